"""The PBFT client's rule for when a request is done: f+1 matching replies, or its own
replica's reply when the client runs on a committee member."""

from consensus.client import Client
from consensus.config import ReplicaConfig
from consensus.crypto import Ed25519Signer, Ed25519Verifier
from protocol.identity import NodeIdentity
from protocol.messages.pbft import Reply

NETWORK = "novacron-client-test"
IDS = [NodeIdentity(bytes([i + 1]) * 32) for i in range(4)]
CFG = ReplicaConfig(3, 1, tuple(i.public_key for i in IDS))
IDS7 = IDS + [NodeIdentity(bytes([i + 1]) * 32) for i in range(4, 7)]
CFG7 = ReplicaConfig(3, 1, tuple(i.public_key for i in IDS7), refs_above=6)  # by reference
VERIFY = Ed25519Verifier(NETWORK)


def reply(i: int, request_id: int, result: bytes):
    raw = Ed25519Signer(IDS[i], NETWORK, 7).seal(Reply(CFG.shard, CFG.epoch, 0, request_id, result), 1.0)
    return VERIFY.open(raw)


def started(signer_identity: NodeIdentity) -> Client:
    c = Client(CFG, Ed25519Signer(signer_identity, NETWORK, 1), first_request_id=5)
    c.submit(b"op", 0.0)
    return c


def test_an_outside_client_waits_for_f_plus_1_matching_replies():
    c = started(NodeIdentity(b"\x09" * 32))
    c.receive(reply(0, 5, b"ok"), 1.0)
    assert c.busy and not c.done
    c.receive(reply(1, 5, b"forged"), 1.0)  # one faulty replica's word is not enough
    assert c.busy
    c.receive(reply(2, 5, b"ok"), 1.0)
    assert not c.busy and [d.result for d in c.done] == [b"ok"]


def test_a_member_takes_its_own_replicas_reply_alone():
    c = started(IDS[2])
    c.receive(reply(1, 5, b"ok"), 1.0)  # another member's reply alone: not yet
    assert c.busy
    c.receive(reply(2, 5, b"ok"), 1.5)  # its own replica executed it at a committed seq
    assert not c.busy and [(d.result, d.done_at) for d in c.done] == [(b"ok", 1.5)]


def test_a_members_own_reply_to_another_request_is_ignored():
    c = started(IDS[2])
    c.receive(reply(2, 4, b"old"), 1.0)
    assert c.busy and not c.done


def resend_times(c: Client, until: float, step: float = 0.25, start: float = 0.0) -> list[float]:
    out, t = [], start
    while t < until:
        t += step
        if c.tick(t):
            out.append(t)
    return out


def test_re_sends_back_off_to_a_cap_and_the_backoff_holds_until_a_request_needs_none():
    """A committee that cannot commit yet is not sent the same request every 0.5 s forever;
    nor, by reference, is each next request, which it answers as late (RFC 6298 5.5-5.7,
    Karn's rule). Sending to the primary alone, the next request starts from the base again
    (a stale view's first send would otherwise cost each request the backed-off wait)."""
    c = Client(CFG7, Ed25519Signer(IDS[0], NETWORK, 1), retry=0.5, max_retry=4.0,
               first_request_id=5)
    c.submit(b"op", 0.0)  # by reference every member has it: re-sends back off to 32 s
    assert resend_times(c, 64.0) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 63.5]
    c.receive(reply(0, 5, b"ok"), 64.0)  # its own replica's reply: done
    assert not c.busy
    c.submit(b"next", 64.0)  # it was re-sent: no sample (Karn's rule), the backed-off wait
    assert resend_times(c, 76.0, start=64.0) == [68.0, 76.0]
    c.receive(reply(0, 6, b"ok"), 76.0)
    c.submit(b"third", 76.0)  # answered before its first re-send: a sample, the wait learned
    c.receive(reply(0, 7, b"ok"), 77.0)
    assert c.retry == 3.0  # srtt 1 + 4 x rttvar 0.5
    to_primary = Client(CFG, Ed25519Signer(IDS[0], NETWORK, 1), retry=0.5, max_retry=4.0,
                        first_request_id=5)
    to_primary.submit(b"op", 0.0)
    assert resend_times(to_primary, 20.0) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5]
    to_primary.receive(reply(0, 5, b"ok"), 20.0)
    to_primary.submit(b"next", 20.0)
    assert resend_times(to_primary, 21.5, start=20.0) == [20.5, 21.5]


def test_the_first_re_send_follows_the_committees_pace():
    """Requests that finish in 0.4-0.6 s, some after the 0.5 s base: the client learns the
    pace (RFC 6298's srtt + 4 x rttvar over requests that needed no re-send) and stops
    re-sending those to every member; one that was re-sent is no sample (Karn's rule: a first
    send to a member that is no longer primary is answered only after the re-send, and
    sampling it drove the wait up on itself); a fast committee keeps the base."""
    c = Client(CFG, Ed25519Signer(IDS[0], NETWORK, 1), retry=0.5, max_retry=8.0,
               first_request_id=5)
    t = 0.0
    for k in range(20):
        c.submit(b"op", t)
        took = 0.45 + 0.05 * (k % 3 - 1)  # 0.4 to 0.5 s: before the first re-send
        c.receive(reply(0, 5 + k, b"ok"), t + took)
        t += took
    assert 0.5 < c.retry < 1.0
    c.submit(b"op", t)
    assert not c.tick(t + 0.5) and c.tick(t + c.retry)  # re-sent: no sample
    before = (c.srtt, c.retry)
    c.receive(reply(0, 25, b"ok"), t + 5.0)
    assert (c.srtt, c.retry) == before
    fast = Client(CFG, Ed25519Signer(IDS[0], NETWORK, 1), retry=0.5, first_request_id=5)
    for k in range(5):
        fast.submit(b"op", float(k))
        fast.receive(reply(0, 5 + k, b"ok"), k + 0.01)
    assert fast.retry == 0.5


def test_by_reference_the_first_send_goes_to_all_and_re_sends_to_f_plus_1_in_turn():
    """Every member got the request first (each forwards it to the primary itself); a re-send
    only replaces lost copies, so it goes to f+1 members (one correct), the next f+1 each time."""
    cfg = CFG7
    assert cfg.by_reference and cfg.f == 2
    c = Client(cfg, Ed25519Signer(NodeIdentity(b"\x09" * 32), NETWORK, 1), retry=0.5)
    assert {a.to for a in c.submit(b"op", 0.0)} == set(cfg.committee)
    rounds = [[a.to for a in c.tick(t)] for t in (0.5, 1.5, 3.5)]
    assert [len(r) for r in rounds] == [3, 3, 3]
    assert rounds[0] == list(cfg.committee[0:3]) and rounds[1] == list(cfg.committee[3:6])
    assert rounds[2] == [cfg.committee[6], cfg.committee[0], cfg.committee[1]]
    small = Client(CFG, Ed25519Signer(IDS[0], NETWORK, 1), retry=0.5)  # whole batches: all
    small.submit(b"op", 0.0)
    assert {a.to for a in small.tick(0.5)} == set(CFG.committee)


def test_a_re_send_repeats_the_same_signed_bytes_until_the_id_or_epoch_changes():
    """A backup rebuilds a pre-prepare by reference from the hash of the request's bytes, and
    the primary orders the copy it got first: a re-send sealed afresh looked like another
    request to every member holding the first, and each asked the primary for the batch."""
    import dataclasses

    c = Client(CFG7, Ed25519Signer(NodeIdentity(b"\x09" * 32), NETWORK, 1), retry=0.5)
    first = {a.data for a in c.submit(b"op", 0.0)}
    assert len(first) == 1
    again = {a.data for t in (0.5, 1.5, 3.5) for a in c.tick(t)}
    assert again == first
    c.renumber(c.current)  # another daemon used our key: a new id, sealed anew
    renumbered = {a.data for a in c.tick(7.5)}
    assert len(renumbered) == 1 and renumbered != first
    assert VERIFY.open(renumbered.pop()).body.request_id == c.current
    moved = {a.data for a in c.reconfigure(dataclasses.replace(CFG7, epoch=2), 8.0)}
    assert VERIFY.open(moved.pop()).body.epoch == 2

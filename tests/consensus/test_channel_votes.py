"""Votes taken on their channel's word (``Ed25519Verifier.open_direct``), and the evidence a
replica offers when one of them equivocates."""

import pytest

from consensus.actions import Misbehaviour
from consensus.crypto import Ed25519Verifier
from consensus.evidence import Equivocation, check_equivocation
from consensus.quorum import prepare_bytes
from consensus.statemachine import kv_op
from protocol.envelope import HEADER_SIZE
from protocol.errors import BadSignature
from protocol.identity import node_id_from_public_key
from protocol.messages.pbft import Commit, PrePrepare, Prepare, Reply, Request
from testnet.pbft_sim.bus import Bus


def garbled(raw: bytes) -> bytes:
    """``raw`` with its envelope signature spoiled (the body, and any vote in it, intact)."""
    sig = bytearray(raw[3:HEADER_SIZE])
    sig[0] ^= 1
    return raw[:3] + bytes(sig) + raw[HEADER_SIZE:]


def test_a_vote_from_its_own_connection_needs_no_envelope_signature_and_nothing_else_skips_it():
    bus = Bus(4)
    alice, bob = bus.cfg.committee[1], bus.cfg.committee[2]
    me, other = node_id_from_public_key(alice), node_id_from_public_key(bob)
    signer = bus.signer(alice)
    digest = b"\x01" * 32
    vote = signer.sign_vote(prepare_bytes(3, 1, 0, 1, digest))
    for msg in (Prepare(3, 1, 0, 1, digest, vote), Commit(3, 1, 0, 1, digest, vote),
                Reply(3, 1, 0, 7, b"ok")):
        raw = garbled(signer.seal(msg, 0.0))
        assert bus.verifier.open_direct(raw, me).body == msg
        with pytest.raises(BadSignature):
            bus.verifier.open_direct(raw, other)  # relayed, or another peer's claim: checked
        with pytest.raises(BadSignature):
            bus.verifier.open(raw)
    request = signer.seal(Request(3, 1, 7, b"op"), 0.0)
    pre = signer.seal(PrePrepare(3, 1, 0, 1, digest, (request,), vote), 0.0)
    for raw in (request, pre):  # kept and forwarded as proof: always checked
        assert bus.verifier.open_direct(raw, me).sender == alice
        with pytest.raises(BadSignature):
            bus.verifier.open_direct(garbled(raw), me)


@pytest.mark.parametrize("spoil", [False, True])
def test_an_equivocating_prepare_is_evidence_only_when_both_envelopes_verify(spoil):
    bus = Bus(4)
    replica = bus.replica(1)
    offender = bus.cfg.committee[2]
    signer = bus.signer(offender)
    sent = []
    for digest in (b"\x01" * 32, b"\x02" * 32):
        raw = signer.seal(Prepare(3, 1, 0, 1, digest, signer.sign_vote(
            prepare_bytes(3, 1, 0, 1, digest))), 0.0)
        sent.append(garbled(raw) if spoil and not sent else raw)
    blame = []
    for raw in sent:
        env = bus.verifier.open_direct(raw, node_id_from_public_key(offender))
        blame += [a for a in replica.receive(env) if isinstance(a, Misbehaviour)]
    (m,) = blame
    assert (m.offender, m.reason) == (offender, "equivocation")
    if spoil:  # true here (its channel proved who sent it), but no proof for anyone else
        assert m.evidence is None
    else:
        assert isinstance(m.evidence, Equivocation)
        assert check_equivocation(m.evidence, bus.verifier) is None


class CountingVerifier(Ed25519Verifier):
    __slots__ = ("votes",)

    def __init__(self, network: str) -> None:
        super().__init__(network)
        self.votes = 0

    def verify_vote(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        self.votes += 1
        return super().verify_vote(public_key, data, signature)


def test_prepares_after_the_slot_prepared_are_kept_unchecked_and_a_bad_one_before_is_refused():
    """A member of a 7-member committee needs the pre-prepare and q-1 = 4 prepares; those that
    come after join no certificate, so their votes are not checked (every prepare's was). A
    prepare with a bad vote before the slot prepared is still refused and blamed."""
    bus = Bus(7)
    counting = CountingVerifier(bus.verifier.network)
    bus.verifier = counting
    for pk in bus.cfg.committee:
        bus.replicas[pk] = bus.make(pk)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    assert client.current is None
    backup = bus.replica(1)
    (slot,) = [s for s in backup.log.slots.values() if s.committed]
    assert len(slot.prepares[0]) == 6  # every backup's prepare (its own too) is kept
    # A backup prepares on the pre-prepare and q-1 = 4 prepares, its own among them: it
    # checks the pre-prepare's vote and 3 others' prepares; the primary checks 4 prepares;
    # every member checks 4 commits for the certificate (not its own). 70 before: each
    # backup checked all 5 others' prepares and the primary all 6.
    assert counting.votes == 6 * (1 + 3) + 4 + 7 * 4
    fresh = Bus(7)
    backup, other = fresh.replica(1), fresh.cfg.committee[2]
    signer = fresh.signer(other)
    digest = b"\x01" * 32
    forged = signer.seal(Prepare(3, 1, 0, 1, digest, b"\x00" * 64), 0.0)
    blame = [a for a in backup.receive(fresh.verifier.open(forged)) if isinstance(a, Misbehaviour)]
    assert [m.offender for m in blame] == [other]

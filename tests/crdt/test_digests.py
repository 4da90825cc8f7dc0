"""Digests in parts (``crdt.digests``): every digest message the protocol builds fits its caps."""

import pytest

from protocol.canonical import packb
from protocol.errors import MalformedMessage, MessageTooLarge
from protocol.messages.crdt import MAX_REPLICAS, CrdtDigest, CrdtDigestPart
from protocol.schema import encode_body

from crdt import AntiEntropyConfig, CrdtReplica, ObjectSpec, PNCounter
from crdt.digests import DigestStaging, decode_contexts, digest_messages
from crdt.dots import CausalContext
from crdt.values import DEFAULT_LIMITS
from tests.crdt.harness import connect, pump

T0 = 1_000_000
NODE = "12D3KooW" + "x" * 44  # as long as a real node id


def registry_ctx(writers: int) -> CausalContext:
    ctx = CausalContext({f"{NODE[:-6]}{i:06d}": 3 for i in range(writers)})
    ctx.add_range(f"{NODE[:-6]}{0:06d}", 7, 9)  # a gap: a dot cloud row, not only a counter
    return ctx


def joined(msgs):
    out: dict[str, CausalContext] = {}
    for m in msgs:
        for name, ctx in decode_contexts(m.replicas, m.contexts, {"caps": 1, "x": 1},
                                         DEFAULT_LIMITS).items():
            out.setdefault(name, CausalContext()).join(ctx)
    return out


def test_a_small_network_still_sends_one_plain_digest():
    (msg,) = digest_messages({"caps": registry_ctx(50)}, session=1, applied_session=2,
                             applied_seq=3, max_bytes=900_000)
    assert isinstance(msg, CrdtDigest)
    assert joined([msg])["caps"] == registry_ctx(50)


@pytest.mark.parametrize("writers", [4_097, 10_000, 30_000])
def test_ten_thousand_writers_go_in_parts_each_under_the_caps(writers):
    ctxs = {"caps": registry_ctx(writers), "x": registry_ctx(10)}
    msgs = digest_messages(ctxs, session=1, applied_session=2, applied_seq=3, max_bytes=200_000)
    assert len(msgs) > 1 and all(isinstance(m, CrdtDigestPart) for m in msgs)
    for m in msgs:
        body = packb(encode_body(m), maps=False)  # validates: the schema's caps hold
        assert len(body) <= 200_000 + 16_384
        assert len(m.replicas) <= MAX_REPLICAS
    staging = DigestStaging(64 << 20)
    got = None
    for m in reversed(msgs):  # any order
        got = staging.add(m) or got
    assert got is not None and joined(got) == ctxs


def test_staging_is_bounded_and_checks_part_numbers():
    msgs = digest_messages({"caps": registry_ctx(5000)}, session=1, applied_session=0,
                           applied_seq=0, max_bytes=100_000)
    with pytest.raises(MessageTooLarge):
        small = DigestStaging(150_000)
        for m in msgs:
            small.add(m)
    bad = CrdtDigestPart(1, 0, 0, 5, 5, (), ())
    with pytest.raises(MalformedMessage):
        DigestStaging(1 << 20).add(bad)
    # A newer digest from the same peer replaces a half-staged one.
    s = DigestStaging(64 << 20)
    assert s.add(msgs[0]) is None
    newer = digest_messages({"caps": registry_ctx(5000)}, session=1, applied_session=0,
                            applied_seq=9, max_bytes=100_000)
    for m in newer[:-1]:
        assert s.add(m) is None
    assert s.add(newer[-1]) == newer


def test_replicas_exchange_digests_in_parts_and_still_send_only_what_is_lacking():
    # Node-id-sized writer names and a small budget: a dozen writers already need parts.
    config = AntiEntropyConfig(max_message_bytes=700)
    names = [f"w{i}{NODE[:50]}" for i in range(12)]
    rs = {n: CrdtReplica(n, {"c": ObjectSpec(PNCounter())}, session=i + 1, config=config)
          for i, n in enumerate(names)}
    inflight = []
    for n in names[1:]:
        inflight += connect(rs, names[0], n, T0)
        rs[n].update("c", lambda c, w: c.p_inc(w, 1), T0)
    now = pump(rs, T0, inflight, rounds=60)
    w1, w2 = names[1], names[2]
    a, b = rs[w1], rs[w2]
    pump(rs, now, connect(rs, w1, w2, now), rounds=60)
    assert a.get("c").value() == b.get("c").value() == 11
    # In sync now: a fresh digest from w1 comes in parts and makes w2 send nothing but acks.
    w1_digest = a._full_digest(w2, a.books.peer(w2), now + 1)
    assert len(w1_digest) > 1 and all(isinstance(m, CrdtDigestPart) for _, m in w1_digest)
    replies = [r for _, m in w1_digest for r in b.on_message(w1, m, now + 2)]
    assert replies == []
    assert b.books.peer(w1).digest is not None
    assert b.books.peer(w1).digest["c"] == a.objects["c"].ctx

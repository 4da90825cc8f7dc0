"""No message a replica builds exceeds its frame cap, whatever clients send.

The worst cases of ``consensus.sizes`` are checked two ways: every configuration the daemon can
run is accepted (and a too-large one refused), and a committee fed the largest requests there
are, forced through a view change with a full window of prepared batches and a replica that
missed them, never sends a message over ``max_message`` nor over its kind's computed bound.
"""

import pytest

from consensus.actions import Broadcast, Committed, Send, ViewEntered
from consensus.config import ReplicaConfig
from consensus.sizes import MAX_OPERATION, MAX_REQUEST_BYTES
from consensus.statemachine import kv_op
from protocol.errors import LocalProtocolError
from testnet.pbft_sim.bus import Bus


@pytest.mark.parametrize("n", [1, 4, 10, 31, 100, 256])
def test_every_committee_size_fits_the_frame_cap(n):
    cfg = ReplicaConfig(0, 0, tuple(i.to_bytes(32, "big") for i in range(n)),
                        checkpoint_interval=16, window=32)
    worst = cfg.worst_case()
    assert max(worst.values()) <= cfg.max_message == 512 * 1024
    assert worst["viewchange"] > 32 * 64 * ((n + (n - 1) // 3 + 2) // 2)  # it counts the votes


def test_a_configuration_that_could_overflow_is_refused():
    keys = tuple(i.to_bytes(32, "big") for i in range(4))
    with pytest.raises(LocalProtocolError, match="preprepare"):
        ReplicaConfig(0, 0, keys, max_batch_bytes=600 * 1024)
    with pytest.raises(LocalProtocolError, match="one request"):
        ReplicaConfig(0, 0, keys, max_batch_bytes=1024)
    with pytest.raises(LocalProtocolError, match="state_chunk"):
        ReplicaConfig(0, 0, keys, chunk_size=1 << 20)


def largest_sent(bus):
    by_kind: dict[str, int] = {}
    for acts in bus.actions.values():
        for a in acts:
            if isinstance(a, (Send, Broadcast)):
                kind = bus.verifier.open(a.data).type.removeprefix("pbft.")
                by_kind[kind] = max(by_kind.get(kind, 0), len(a.data))
    return by_kind


def test_largest_requests_through_a_view_change_stay_under_the_cap():
    bus = Bus(4, checkpoint_interval=16, window=32, batch_size=64, max_inflight=32,
              view_change_timeout=1.0, status_interval=0.25)
    clients = [bus.add_client() for _ in range(40)]
    big = b"x" * (MAX_OPERATION - 64)
    late = bus.cfg.committee[3]
    # Phase 1: batches prepare everywhere but never commit, and replica 3 sees no pre-prepare:
    # the view change then carries a window of prepared certificates, and replica 3 must
    # fetch the re-proposed batches by digest.
    bus.drop = lambda src, dst, env: env.type == "pbft.commit" or (
        env.type == "pbft.preprepare" and dst == late)
    for i, c in enumerate(clients):
        op = kv_op("put", f"k{i}", big)
        assert len(op) <= MAX_OPERATION
        bus.submit(c, op)
    bus.run()
    assert all(len(r.raw) <= MAX_REQUEST_BYTES for r in bus.replica(0).pending.values())
    prepared = [s for s in bus.replica(1).log.slots.values() if s.prepared_cert is not None]
    assert len(prepared) >= 10  # 40 requests of 64 KiB, at most 256 KiB a batch
    # Phase 2: the primary goes silent; the others change views and finish the work. Replica 3
    # still gets no batch but by asking for it (no pre-prepares, no commit proofs).
    old_primary = bus.cfg.committee[0]
    bus.drop = lambda src, dst, env: old_primary in (src, dst) or (
        dst == late and env.type in ("pbft.preprepare", "pbft.commit_proof"))
    for _ in range(80):
        bus.tick(0.25)
        bus.run()
        if all(c.current is None for c in clients):
            break
    assert all(c.current is None and c.done[-1].result == b"ok" for c in clients)
    for i in (1, 2, 3):
        assert any(isinstance(a, ViewEntered) for a in bus.actions[bus.cfg.committee[i]])
        assert len(bus.replica(i).service.machine.data) == 40
    assert any(isinstance(a, Committed) for a in bus.actions[late])
    sent = largest_sent(bus)
    worst = bus.cfg.worst_case()
    assert {"preprepare", "viewchange", "newview", "batch_fetch", "batch_body"} <= set(sent)
    for kind, size in sent.items():
        assert size <= bus.cfg.max_message, (kind, size)
        if kind in worst:
            assert size <= worst[kind], (kind, size, worst[kind])
    assert sent["viewchange"] > 20 * 64 * 3  # a window's worth of certificates, no batches


def test_batches_are_cut_by_bytes():
    bus = Bus(4, batch_size=64, max_inflight=1)
    clients = [bus.add_client() for _ in range(12)]
    for i, c in enumerate(clients):
        bus.submit(c, kv_op("put", f"k{i}", b"y" * (MAX_OPERATION - 64)))
    bus.run()
    assert all(c.current is None for c in clients)
    sizes = [len(c.requests) for c in (a for a in bus.actions[bus.cfg.committee[0]]
                                       if isinstance(a, Committed))]
    assert sum(sizes) == 12 and max(sizes) == 3  # 256 KiB holds three 64 KiB requests
    sent = largest_sent(bus)
    assert 3 * MAX_REQUEST_BYTES - 1024 < sent["preprepare"] <= bus.cfg.worst_case()["preprepare"]

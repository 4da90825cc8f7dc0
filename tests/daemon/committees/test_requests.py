"""A shard's request queue: a user's interactive request goes ahead of bulk ledger traffic."""

import pytest

from consensus.config import ReplicaConfig
from consensus.crypto import Ed25519Signer
from consensus.sizes import MAX_OPERATION
from daemon.committees.requests import ShardRequests
from daemon.ledger.shard import LEDGER, PACKED, ledger_batcher, pack_operation
from protocol.envelope import open_envelope
from protocol.messages import ledger as ops
from protocol.identity import NodeIdentity


def queue():
    me = NodeIdentity(b"\x01" * 32)
    cfg = ReplicaConfig(0, 0, (me.public_key,))
    return ShardRequests(cfg, Ed25519Signer(me, "t", 1), ledger_batcher)


def test_urgent_requests_jump_the_bulk_queue_and_bulk_is_combined_by_bytes():
    q = queue()
    bulk = [q.enqueue(LEDGER + ops.encode_op(ops.Tick(i))) for i in range(40)]
    kv = q.enqueue(b"K" + b"put", urgent=True)
    q.pump(0.0)
    assert q.current == [kv]
    q.current, q.client.current = [], None  # (as if it had committed)
    q.pump(0.0)
    assert q.current == bulk[:32]  # one Batch of up to 32 operations


def test_an_operation_over_the_request_limit_is_refused_at_once():
    with pytest.raises(ValueError, match="request limit"):
        queue().enqueue(b"J" + b"x" * MAX_OPERATION)


def test_the_application_packs_each_operation_as_it_goes_into_a_request():
    q = queue()
    q.pack = pack_operation
    big = q.enqueue(LEDGER + ops.encode_op(ops.Cancel(b"c" * 32)) + b"\x00" * 4000)
    actions = q.pump(0.0)
    assert q.current == [big]
    request = open_envelope(actions[0].data, network="t").body
    assert request.operation[:1] == PACKED and len(request.operation) < 200

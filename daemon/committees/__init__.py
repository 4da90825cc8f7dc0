"""Hard state on the wire: this node's PBFT replicas and client, over libp2p streams (direct,
or along a large committee's mesh).

- ``hooks``    -- ``ShardApplication``: what the service needs of the state its shards
                  replicate (a machine factory, a batcher, a tick hook); the job ledger's
                  side is ``daemon.ledger.shard.LedgerShards``. Nothing here imports jobs.
- ``epochs``   -- ``EpochManager``: joins, evictions, epoch notices, hand-over between
                  committees (it sees the service only through ``EpochHost``).
- ``epoch_plan`` -- what the epoch manager does at each tick, pure; how long an epoch lasts
                  at least (in proportion to the members).
- ``epoch_sync`` -- following the chain by announcement and fetch, pure: whom to ask.
- ``handoff_plan`` -- which old members send a new member the hand-over; when it asks, pure.
- ``peer_pace`` -- answering a peer's asks at most once an interval.
- ``runner``   -- carrying out replica actions: persist (durably) before send; replica stores.
- ``requests`` -- submitting requests to a shard, one outstanding per shard, with a queue.
- ``relay``    -- a large committee's broadcasts over its mesh (``consensus.mesh``): the
                  bounded seen set, forwarding, and routes to one member along the mesh.
- ``service``  -- ``CommitteeService``: committees from the genesis/directory, routing, ticks,
                  and the ``committees`` / ``kv.*`` control methods.
"""

from daemon.committees.service import PROTOCOL, CommitteeService

__all__ = ["PROTOCOL", "CommitteeService"]

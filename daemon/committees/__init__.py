"""Hard state on the wire: this node's PBFT replicas and client, over direct libp2p streams.

- ``machine``  -- ``ShardMachine``: a shard committee's state machine (job ledger + key-value).
- ``runner``   -- carrying out replica actions: persist (durably) before send; replica stores.
- ``requests`` -- submitting requests to a shard, one outstanding per shard, with a queue.
- ``service``  -- ``CommitteeService``: committees from the genesis/directory, routing, ticks,
                  and the ``committees`` / ``kv.*`` control methods.
"""

from daemon.committees.service import PROTOCOL, CommitteeService

__all__ = ["PROTOCOL", "CommitteeService"]

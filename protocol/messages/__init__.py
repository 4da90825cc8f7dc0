"""Message classes, one module per protocol. Importing this package registers them all.

- ``capability`` -- a node's capability record, announced on gossip.
- ``crdt``       -- CRDT deltas, acknowledgements, digests and full states (soft state sync).
- ``pbft``       -- client requests and PBFT replica messages (hard state ordering).
- ``tasks``      -- task offers to workers and their signed result digests.
- ``ledger``     -- job ledger operations (submit, place, start, result, ...), ordered by shard
                  committees inside PBFT requests.
- ``blobs``      -- content-addressed blob requests and chunks.

Version policy: a message's fields never change within a version. A new field means a new
version class registered beside the old one, kept until no supported release sends it.
"""

from protocol.messages import blobs, capability, crdt, ledger, pbft, tasks

__all__ = ["blobs", "capability", "crdt", "ledger", "pbft", "tasks"]

"""The soft state's ``load`` object: every node's task load, apart from its capability record.

A worker's load moves with each task it starts and ends; the rest of its capability record
(~1.1 KB, most of it the attestation report: on a machine without TPM or TEE, the reasons
why) changes a few times a day. Rewriting the whole
record for load sent a kilobyte and more across every soft-state link for each change of a
busy worker: on a 30-daemon ``planet`` testnet one 100-task job moved ~200 MB of deltas over
all nodes, more than consensus did. Load now lives in an owner-keyed LWW map of its own next
to the registry, as link summaries do (``daemon.softstate.links``): node k writes key k,
``[permille, at_ms]``, signed on its dot, so anti-entropy, pruning and signature checks are
the registry's own, and a change costs a tenth of the record.

A record still carries the load of the moment it was written. A reader takes the newer of
the two (``current``): the record's at its ``updated_ms``, the entry's at its ``at_ms``; so a
record written after the last entry wins, and records of daemons that write no entries still
count. A malformed entry is ignored (the record's load stands), never a crash.
"""

from __future__ import annotations

from typing import Any

from crdt import CrdtReplica, LWWMap
from daemon.softstate.decoded import DecodedValues
from protocol.messages.capability import CapabilityAnnounce

LOAD = "load"
MAX_PERMILLE = 1000


def to_wire(permille: int, at_ms: int) -> list[int]:
    return [max(0, min(MAX_PERMILLE, permille)), at_ms]


def from_wire(value: Any) -> tuple[int, int] | None:
    """``(permille, at_ms)``, or None for anything else a writer may have signed."""
    if type(value) is not list or len(value) != 2 or \
            not all(type(x) is int for x in value):
        return None
    permille, at_ms = value
    if not 0 <= permille <= MAX_PERMILLE or at_ms < 0:
        return None
    return permille, at_ms


class LoadBook:
    """Our load entry (``write``) and everyone's (``entry``, ``current``)."""

    def __init__(self, replica: CrdtReplica, node_id: str) -> None:
        self.replica = replica
        self.node_id = node_id
        self.written: tuple[int, int] | None = None
        """Our last entry ``(permille, at_ms)``."""
        self._decoded = DecodedValues(lambda value, _node: from_wire(value))

    def write(self, permille: int, now_ms: int) -> None:
        wire = to_wire(permille, now_ms)
        self.replica.update(LOAD, lambda m, w: m.p_set(w, self.node_id, wire), now_ms)
        self.written = (wire[0], wire[1])

    def entry(self, node: str) -> tuple[int, int] | None:
        """``node``'s entry (None: none, or one its writer got wrong), decoded once per value:
        placement reads every node's load."""
        loads: LWWMap = self.replica.get(LOAD)  # type: ignore[assignment]
        return self._decoded.get(loads, node)

    def current(self, record: CapabilityAnnounce) -> int:
        """The node's load: its entry's if written after the record, else the record's."""
        found = self.entry(record.node_id)
        if found is None or found[1] <= record.updated_ms:
            return record.load
        return found[0]

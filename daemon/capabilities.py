"""This node's capability record, and checking the records peers gossip.

The record (``protocol.messages.capability.CapabilityAnnounce``) says what a node offers: task
slots, memory, runtimes, its attestation report, its availability summary, its load. It is
soft state, gossiped as a CRDT value; everything in it is the node's own claim except what
verifiers sign in the attestation report, and the scheduler treats it so.

Availability: the node records its own sessions (``daemon.sched.AvailabilityHistory``) in its
database: ``started`` at boot, ``alive`` every ``HEARTBEAT_S`` (so a crash ends the session at
the last heartbeat), ``stopped`` on a clean shutdown.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from daemon import __version__
from daemon.sched import AvailabilityHistory, summarize
from daemon.storage.db import Database
from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.messages.capability import CapabilityAnnounce
from protocol.messages.tasks import RUNTIME
from protocol.schema import struct_spec

HEARTBEAT_S = 60


def offered_runtimes(runtime_id: str) -> tuple[str, ...]:
    """What a node's record offers: the WASI target, and the exact runtime (wasmtime release
    and engine settings, ``daemon.runtime.pool.runtime_id``) as ``wasm32-wasi@ID``. Replicas
    agree on fuel-limited statuses only on one runtime, so placement pins each task to one
    (``daemon.ledger.placing.task_runtime``)."""
    return (RUNTIME, f"{RUNTIME}@{runtime_id}")
_NS = "node"
_SPEC = struct_spec(CapabilityAnnounce)
_FIELDS = len(_SPEC.names)


def machine_memory_mib() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


class AvailabilityRecorder:
    """The node's own up/down history, persisted so it survives restarts and crashes."""

    def __init__(self, db: Database) -> None:
        self.db = db
        raw = db.get(_NS, "availability")
        self.history = AvailabilityHistory()
        if raw:
            try:
                self.history = AvailabilityHistory.from_record(unpackb(raw))
            except (RemoteProtocolError, ValueError, TypeError, KeyError):
                pass  # a damaged record only costs our history: start afresh

    def _save(self) -> None:
        with self.db.transaction():
            self.db.put(_NS, "availability", packb(self.history.to_record()))

    def started(self, now: float) -> None:
        self.history = self.history.started(now)
        self._save()

    def alive(self, now: float) -> None:
        self.history = self.history.alive(now)
        self._save()

    def stopped(self, now: float) -> None:
        self.history = self.history.stopped(now)
        self._save()

    def summary_wire(self, now: float) -> Any:
        return summarize(self.history, now).to_wire()


def build_record(node_id: str, *, slots: int, memory_mib: int, runtimes: tuple[str, ...],
                 listen: tuple[str, ...], attestation: Any, availability: Any, load_permille: int,
                 domain: str, now_ms: int, generation: int, instance: int = 0,
                 started_ms: int = 0, rivals: tuple[int, ...] = ()) -> CapabilityAnnounce:
    return CapabilityAnnounce(
        node_id=node_id, software_version=__version__, cores=os.cpu_count() or 1,
        memory_mb=memory_mib, runtimes=runtimes, listen_addrs=listen[:8],
        attestation=attestation, availability=availability, slots=slots,
        load=max(0, min(1000, load_permille)), domain=domain[:128] or node_id,
        updated_ms=now_ms, generation=generation, instance=instance, started_ms=started_ms,
        rivals=rivals[-4:])


def record_to_wire(record: CapabilityAnnounce) -> list[Any]:
    return _SPEC.encode(record)


def record_from_wire(value: Any, expected_node: str | None = None) -> CapabilityAnnounce:
    """Check a gossiped record; raises ``MalformedMessage`` for anything a peer got wrong."""
    if type(value) is list and len(value) == _FIELDS - 3:
        value = [*value, 0, 0, []]  # written before records named their daemon's instance
    record = _SPEC.decode(value, "capability")
    if expected_node is not None and record.node_id != expected_node:
        raise MalformedMessage(f"capability record of {record.node_id} under key {expected_node}")
    return record


def bump(record: CapabilityAnnounce, **changes: Any) -> CapabilityAnnounce:
    return replace(record, generation=record.generation + 1, **changes)


__all__ = ["AvailabilityRecorder", "HEARTBEAT_S", "RUNTIME", "RemoteProtocolError", "build_record",
           "offered_runtimes",
           "bump", "machine_memory_mib", "record_from_wire", "record_to_wire"]

"""Carrying out a replica's (or a client's) actions: persist, then send, in list order.

The contract (``consensus.actions``): every ``Persist`` is durable before any ``Send`` or
``Broadcast`` after it in the same list. Consecutive ``Persist`` entries share one SQLite
transaction, committed before the next message leaves; a SIGKILL after the commit loses nothing
(WAL), and a crash before it means the message never left.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from consensus.actions import (
    Broadcast, Committed, EpochEnded, Misbehaviour, Persist, Send, StateInstalled, ViewEntered,
)
from consensus.config import ReplicaConfig
from consensus.replica import Replica
from daemon.storage.db import Database

log = logging.getLogger("novacron.consensus")


def store_namespace(shard: int, epoch: int) -> str:
    return f"pbft/{shard}/{epoch}"


def load_store(db: Database, shard: int, epoch: int) -> dict[str, bytes]:
    return {k.decode(): v for k, v in db.scan(store_namespace(shard, epoch))}


class ActionSink:
    """Where actions go: ``send(public_key, bytes)``, a committee for broadcasts, the database.

    ``spread(owner, bytes)``, when given, carries a broadcast of a large committee over its
    mesh (``daemon.committees.relay``) and says True; False leaves it to go all-to-all."""

    def __init__(self, db: Database, send: Callable[[bytes, bytes], None],
                 on_event: Callable[[Any, Any], None],
                 spread: Callable[[Any, bytes], bool] | None = None) -> None:
        self.db = db
        self.send = send
        self.on_event = on_event
        self.spread = spread
        self.persisted = 0

    def execute(self, owner: Any, namespace: str | None, committee: Iterable[bytes], me: bytes,
                actions: list[Any]) -> None:
        pending: list[Persist] = []
        for a in actions:
            if isinstance(a, Persist):
                pending.append(a)
                continue
            if pending:
                self._flush(namespace, pending)
                pending = []
            if isinstance(a, Send):
                self.send(a.to, a.data)
            elif isinstance(a, Broadcast):
                if self.spread is not None and self.spread(owner, a.data):
                    continue
                for pk in committee:
                    if pk != me and pk not in a.skip:
                        self.send(pk, a.data)
            elif isinstance(a, (Committed, EpochEnded, Misbehaviour, ViewEntered, StateInstalled)):
                try:
                    self.on_event(owner, a)
                except Exception:  # noqa: BLE001 - a listener's bug must not drop the sends after it
                    log.exception("a consensus event listener failed on %s", type(a).__name__)
        if pending:
            self._flush(namespace, pending)

    def _flush(self, namespace: str | None, records: list[Persist]) -> None:
        assert namespace is not None, "a client never persists"
        with self.db.transaction():
            for p in records:
                if p.value is None:
                    self.db.delete(namespace, p.key)
                else:
                    self.db.put(namespace, p.key, p.value)
        self.persisted += len(records)


class ReplicaRunner:
    """One replica this node runs, with its namespace in the database and its counters."""

    def __init__(self, config: ReplicaConfig, replica: Replica, machine: Any) -> None:
        self.config = config
        self.replica = replica
        self.machine = machine
        self.namespace = store_namespace(config.shard, config.epoch)
        self.commits = 0
        self.requests = 0
        self.view_changes = 0
        self.ended: EpochEnded | None = None

    def status(self) -> dict[str, Any]:
        r = self.replica
        return {
            "shard": self.config.shard, "epoch": self.config.epoch, "view": r.view,
            "primary": r.is_primary, "executed": r.last_executed,
            "stable": r.stable.seq, "commits": self.commits, "requests": self.requests,
            "view_changes": self.view_changes, "members": len(self.config.committee),
            "view_changes_started": dict(r.view_change_causes),
            "timeouts_excused": r.timeouts_excused,
            "last_view_change": r.last_view_change, "timeout_s": round(r.timeout, 2),
            "pace_s": None if r.pace is None else round(r.pace, 3),
            "by_reference": {"rebuilt": r.refs_rebuilt, "fetched": r.refs_fetched}
            if self.config.by_reference else None,
        }

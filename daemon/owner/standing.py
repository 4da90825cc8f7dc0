"""This volunteer's standing as the committees record it: results agreed, disagreed, timed out,
and the reputation that placement multiplies every score by.

Why ask the committees: the node itself only knows what it ran and what its worker said; only
the shard ledgers know whether the result agreed with the other replicas'. Each shard keeps its
own record of a worker, so the node asks, as an ordered ``WorkerQuery``, every shard whose jobs
it ran recently (from the task log, so this survives restarts), at most ``MAX_SHARDS`` of them,
once per ``REFRESH_S``: a consensus round per shard every few minutes, not per page view.

``combine`` is pure: the records of several shards as one line for the owner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import trio

from daemon.ledger.reputation import WorkerRecord
from protocol.messages import ledger as ops

log = logging.getLogger("novacron.standing")

REFRESH_S = 300.0
MAX_SHARDS = 8


class LedgerReader(Protocol):
    def shard_of(self, key: bytes) -> int: ...

    async def order(self, shard: int, op: ops.Operation) -> dict[str, Any]: ...


def combine(records: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """All shards' records as one: counts summed, reputation of the summed counts (the same
    Beta rule each shard applies), and the lowest shard's reputation beside it."""
    known = [r for r in records.values() if r.get("known")]
    total = WorkerRecord(agreed=sum(r["agreed"] for r in known),
                         disagreed=sum(r["disagreed"] for r in known),
                         timeouts=sum(r["timeouts"] for r in known))
    return {"shards": len(known), "agreed": total.agreed, "disagreed": total.disagreed,
            "timeouts": total.timeouts, "reputation": round(total.reputation, 4),
            "lowest": round(min((r["reputation"] for r in known), default=total.reputation), 4)}


class Standing:
    """Asks the shards for this node's record now and then; ``view`` is what the page shows."""

    def __init__(self, node_id: str, ledger: LedgerReader,
                 recent_jobs: Callable[[], Iterable[str]]) -> None:
        self.node_id = node_id
        self.ledger = ledger
        self.recent_jobs = recent_jobs
        self.records: dict[int, dict[str, Any]] = {}
        self.asked_at: float | None = None
        self.problem = ""

    def shards(self) -> list[int]:
        shards: list[int] = []
        for job in self.recent_jobs():
            if not job:
                continue
            shard = self.ledger.shard_of(bytes.fromhex(job))
            if shard not in shards:
                shards.append(shard)
            if len(shards) >= MAX_SHARDS:
                break
        return shards

    async def refresh(self) -> None:
        problems = []
        for shard in self.shards():
            try:
                reply = await self.ledger.order(shard, ops.WorkerQuery(self.node_id))
            except Exception as err:  # noqa: BLE001 - CommitteeUnavailable, QueueFull
                problems.append(f"shard {shard}: {err}")
                continue
            if "error" in reply:
                problems.append(f"shard {shard}: {reply['error']}")
            else:
                self.records[shard] = reply
        self.asked_at = trio.current_time()
        self.problem = "; ".join(problems)[:200]
        if problems:
            log.info("standing: could not ask %s", self.problem)

    async def run(self) -> None:
        while True:
            await self.refresh()
            await trio.sleep(REFRESH_S)

    def view(self) -> dict[str, Any]:
        return {**combine(self.records), "asked": self.asked_at is not None,
                "problem": self.problem}

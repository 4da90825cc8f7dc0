"""A volunteer's standing as the shard ledgers record it: asked of the real ledger state machine
(one per shard), refreshed on virtual time, combined into one line, and honest when a shard
cannot be asked."""

from __future__ import annotations

from typing import Any

import trio

from daemon.ledger.reputation import WorkerRecord
from daemon.owner.standing import MAX_SHARDS, REFRESH_S, Standing, combine
from daemon.web.page import standing_rows
from protocol.messages import ledger as ops
from tests.daemon.ledger.ledger_helpers import WORKERS, Harness


class TwoShards:
    """Two real job ledgers; a job's shard is its first byte's parity."""

    def __init__(self) -> None:
        self.shards = {0: Harness(), 1: Harness()}
        self.asked = 0
        self.down: set[int] = set()

    def shard_of(self, key: bytes) -> int:
        return key[0] % 2

    async def order(self, shard: int, op: ops.Operation) -> dict[str, Any]:
        if shard in self.down:
            raise RuntimeError("committee unavailable: no reply within 30 s")
        self.asked += 1
        return self.shards[shard].call(WORKERS[7], op)


def agree_on_shard(h: Harness) -> tuple[str, str]:
    """One task whose two replicas agree; the workers that ran it."""
    job = h.submit(1)
    h.place_all(job)
    h.report(job, 0, 0, b"same")
    h.report(job, 0, 1, b"same")
    task = h.ledger.jobs[job].tasks[0]
    return task.replicas[0].worker, task.replicas[1].worker


def test_combine_sums_counts_and_keeps_the_lowest_shard() -> None:
    records = {0: {"known": True, "agreed": 9, "disagreed": 0, "timeouts": 0, "reputation": 0.9},
               1: {"known": True, "agreed": 1, "disagreed": 1, "timeouts": 2, "reputation": 0.2},
               2: {"known": False, "agreed": 0, "disagreed": 0, "timeouts": 0, "reputation": 0.5}}
    out = combine(records)
    assert (out["shards"], out["agreed"], out["disagreed"], out["timeouts"]) == (2, 10, 1, 2)
    assert out["reputation"] == round(WorkerRecord(10, 1, 2).reputation, 4)
    assert out["lowest"] == 0.2


async def test_the_node_asks_the_shards_it_worked_for_and_refreshes_rarely(autojump_clock) -> None:
    net = TwoShards()
    me, _ = agree_on_shard(net.shards[0])
    agree_on_shard(net.shards[1])  # me may or may not be on shard 1: the record says which
    jobs = ["00" * 32, "01" * 32, "02" * 32, ""]  # shard 0, 1, 0 and a run without a job
    standing = Standing(me, net, lambda: jobs)
    assert standing.shards() == [0, 1]
    assert standing_rows(standing.view())[0][1] == "- (not asked yet)"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(standing.run)
        await trio.sleep(1)
        assert net.asked == 2
        view = standing.view()
        assert view["shards"] >= 1 and view["agreed"] >= 1 and view["disagreed"] == 0
        await trio.sleep(REFRESH_S - 2)
        assert net.asked == 2  # one round per shard per refresh, not per page view
        await trio.sleep(2)
        assert net.asked == 4
        nursery.cancel_scope.cancel()
    rows = dict(standing_rows(standing.view()))
    assert rows["agreed results (committees' record)"].startswith(f"{view['agreed']} agreed")


async def test_a_shard_that_cannot_be_asked_is_said_not_hidden(autojump_clock) -> None:
    net = TwoShards()
    net.down = {0, 1}
    standing = Standing(WORKERS[0].node_id, net, lambda: ["00" * 32, "01" * 32])
    await standing.refresh()
    view = standing.view()
    assert view["shards"] == 0 and "shard 0: committee unavailable" in view["problem"]
    assert "committee unavailable" in standing_rows(view)[0][1]


def test_at_most_a_few_shards_are_asked() -> None:
    jobs = [bytes([i]) * 32 for i in range(40)]
    standing = Standing("x", type("Net", (), {"shard_of": lambda self, k: k[0]})(),
                        lambda: (j.hex() for j in jobs))
    assert len(standing.shards()) == MAX_SHARDS

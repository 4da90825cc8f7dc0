"""The split plan of a large job across shards, its whole id and its combined view (pure)."""

from __future__ import annotations

import hashlib
import random

import pytest

from daemon.jobs.split import (AUTO_PART_TASKS, MAX_PARTS, Part, SplitError, combine,
                               Unanswered, combine_state, grind_nonce, locate, part_count,
                               parts_of, plan, shard_of, spread_words, whole_id)


def test_auto_splits_only_parts_of_a_thousand_tasks_or_more_and_never_past_the_shards() -> None:
    assert part_count(1_999, 2, 0) == 1
    assert part_count(2_000, 2, 0) == 2
    assert part_count(100_000, 4, 0) == 4
    assert part_count(100_000, 1, 0) == 1  # one shard: nothing to split
    assert part_count(3, 4, 0) == 1
    assert part_count(100_000, 1024, 0) == min(MAX_PARTS, 100_000 // AUTO_PART_TASKS)


def test_a_number_asked_is_kept_or_refused_never_lowered_quietly() -> None:
    assert part_count(6, 2, 2) == 2
    assert part_count(6, 4, 1) == 1  # shards = 1: never split
    with pytest.raises(SplitError, match=r"shards = 4, but this network has 2 shards: give "
                                         r'shards = "auto" or at most 2'):
        part_count(100, 2, 4)


@pytest.mark.parametrize("seed", range(40))
def test_a_plan_covers_every_task_once_in_order_on_distinct_shards(seed: int) -> None:
    rng = random.Random(seed)
    shards = rng.randint(1, 12)
    tasks = rng.randint(1, 100_000)
    count = rng.randint(1, min(tasks, shards))
    start = rng.randrange(shards)
    parts = plan(tasks, count, shards, start)
    assert [p.index for p in parts] == list(range(count))
    assert parts[0].first == 0 and parts[-1].last == tasks - 1
    assert all(a.last + 1 == b.first for a, b in zip(parts, parts[1:]))  # contiguous
    sizes = [p.count for p in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True), (seed, sizes)
    assert len({p.shard for p in parts}) == count  # one part per shard
    assert parts[0].shard == start
    for task in {0, tasks - 1, rng.randrange(tasks)}:
        part, local = locate(parts, task)
        assert part.first + local == task and 0 <= local < part.count
    with pytest.raises(IndexError):
        locate(parts, tasks)


def test_a_plan_larger_than_the_tasks_or_shards_is_refused() -> None:
    with pytest.raises(SplitError):
        plan(3, 4, 8, 0)
    with pytest.raises(SplitError):
        plan(100, 3, 2, 0)


def test_the_nonce_is_ground_until_the_part_id_falls_in_its_shard() -> None:
    def job_id_of(n: int) -> bytes:
        return hashlib.sha256(b"op" + n.to_bytes(8, "big")).digest()

    for shard in range(7):
        nonce, jid = grind_nonce(job_id_of, shard, 7, 1_000)
        assert nonce >= 1_000 and jid == job_id_of(nonce) and shard_of(jid, 7) == shard
    with pytest.raises(SplitError):
        grind_nonce(lambda n: b"\x00" * 32, 1, 2, 0, tries=50)  # never in shard 1


def _parts() -> list[Part]:
    return [Part(0, 0, 3, 1, b"\x01" * 32), Part(1, 3, 2, 0, b"\x02" * 32)]


def test_the_whole_id_binds_every_part_id_and_range() -> None:
    parts = _parts()
    base = whole_id(parts)
    assert base == whole_id(list(parts))
    altered = [[parts[0], Part(1, 3, 2, 0, b"\x03" * 32)],   # another part job
               [Part(0, 0, 2, 1, parts[0].job), Part(1, 2, 3, 0, parts[1].job)],  # ranges moved
               parts[::-1], parts[:1]]
    assert all(whole_id(p) != base for p in altered)
    rows = [{"part": p.index, "job": p.job.hex(), "shard": p.shard, "first": p.first,
             "tasks": p.count} for p in parts]
    assert parts_of({"job": base.hex(), "parts": rows}) == parts
    assert parts_of({"job": base.hex()}) is None


def _reply(state: str, tasks: int, ok: int, failed: int = 0, rows: int = 0) -> dict:
    return {"job": b"x", "name": "n", "state": state, "submitted_ms": 10 + tasks,
            "deadline_ms": 1000 + tasks, "now_ms": 500, "quorum": 2, "replicas": 2,
            "counts": {"tasks": tasks, "accepted": ok + failed, "ok": ok, "failed": failed,
                       "failures": {"EXITED": failed} if failed else {}, "cancelled": 0,
                       "open": tasks - ok - failed, "running": 1, "agreed": {"2": ok + failed}},
            "tasks": [{"task": i, "state": "accepted"} for i in range(rows)]}


def test_the_combined_view_adds_counts_and_renumbers_tasks() -> None:
    parts = _parts()
    st = combine(b"\xaa" * 32, "big", parts, [_reply("done", 3, 2, 1, rows=3),
                                              _reply("open", 2, 1, rows=2)])
    assert st["job"] == "aa" * 32 and st["name"] == "big" and st["state"] == "open"
    c = st["counts"]
    assert (c["tasks"], c["ok"], c["failed"], c["open"], c["running"]) == (5, 3, 1, 1, 2)
    assert c["failures"] == {"EXITED": 1} and c["agreed"] == {"2": 4}
    assert [t["task"] for t in st["tasks"]] == [0, 1, 2, 3, 4]
    assert (st["submitted_ms"], st["deadline_ms"], st["quorum"]) == (12, 1003, 2)
    assert [(p["state"], p["shard"], p["first"]) for p in st["parts"]] == [("done", 1, 0), ("open", 0, 3)]
    assert spread_words(st["parts"]) == ("split in 2 parts: tasks 0-2 on shard 1 (done), "
                                         "tasks 3-4 on shard 0 (open)")


def test_a_part_that_cannot_be_asked_is_shown_and_keeps_the_job_open() -> None:
    st = combine(b"\xaa" * 32, "big", _parts(), [_reply("done", 3, 3),
                                                  Unanswered("unreachable", "shard 0: no answer")])
    assert st["state"] == "open"  # its tasks may still run: not "done"
    assert st["counts"]["tasks"] == 5 and st["counts"]["open"] == 2
    assert st["parts"][1] | {"error": "shard 0: no answer", "state": "unreachable"} == st["parts"][1]
    assert "tasks 3-4 on shard 0 (unreachable: shard 0: no answer)" in spread_words(st["parts"])


def test_the_whole_state_ends_only_when_every_part_has() -> None:
    assert combine_state(["done", "done"]) == "done"
    assert combine_state(["done", "open"]) == "open"
    assert combine_state(["loading", "done"]) == "loading"
    assert combine_state(["done", "cancelled"]) == "cancelled"
    assert combine_state(["done", "unreachable"]) == "open"


def test_a_part_its_committee_no_longer_has_ends_the_job_rather_than_hold_it_open() -> None:
    """Ended jobs leave their ledger a day later: a whole job must not read as open forever."""
    st = combine(b"\xaa" * 32, "big", _parts(), [_reply("done", 3, 3),
                                                  Unanswered("gone", "no job 02020202")])
    assert st["state"] == "gone" and st["counts"]["open"] == 0 and st["counts"]["tasks"] == 5
    assert st["parts"][1]["state"] == "gone" and st["parts"][1]["error"] == "no job 02020202"
    assert combine_state(["gone", "cancelled"]) == "cancelled"

"""Submitting a job split across shards, against a real ``JobLedger`` per shard: each part an
ordinary job of its contiguous tasks with every other setting as asked, in its own shard; the
whole -> parts record survives a restart; a refused part refuses the whole and cancels the rest."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio

from consensus.statemachine import ClientRequest
from daemon.blobs.store import BlobStore
from daemon.jobs.spec import load_spec
from daemon.jobs.split import shard_of, whole_id
from daemon.jobs.submitter import SubmitterDuties
from daemon.jobs.wholes import WholeJobs
from daemon.ledger.state import JobLedger
from daemon.storage.db import Database
from protocol.canonical import unpackb
from protocol.messages import ledger as ops

from tests.daemon.ledger.ledger_helpers import MEMBERS, NOW_MS, SUBMITTER, Harness

ROOT = Path(__file__).resolve().parents[3]


class ShardLedgers:
    """``ports.Ledger`` over one real ledger state machine per shard (ordering is trivial
    here: one client); ``refuse``: shards whose committee refuses every job."""

    network = "net"

    def __init__(self, shards: int, refuse: tuple[int, ...] = ()) -> None:
        self.ledgers = [JobLedger([m.public_key for m in MEMBERS], f=1) for _ in range(shards)]
        self.refuse = refuse
        self.rid = 0
        for ledger in self.ledgers:
            for m in MEMBERS:
                self._apply(ledger, m.public_key, ops.Tick(NOW_MS))

    def _apply(self, ledger: JobLedger, who: bytes, op: Any) -> dict[str, Any]:
        self.rid += 1
        return dict(unpackb(ledger.apply(ClientRequest(who, self.rid, ops.encode_op(op), b""))))

    async def order(self, shard: int, op: Any) -> dict[str, Any]:
        await trio.sleep(0)
        if shard in self.refuse and isinstance(op, ops.Submit):
            return {"error": "this committee is full"}
        return self._apply(self.ledgers[shard], SUBMITTER.public_key, op)

    def shard_of(self, key: bytes) -> int:
        return shard_of(key, len(self.ledgers))

    def member_count(self) -> int:
        return len(MEMBERS)

    def chain_before(self, epoch: int) -> tuple[bytes, ...]:
        return ()


def _spec(tmp: Path, tasks: int, extra: str = "") -> Any:
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp / "pi.wasm")
    # Inline inputs of 300 bytes (a part's Submit then holds ~90: the rest go by AddInputs),
    # and every 50th above the inline limit (kept as a blob).
    inputs = ", ".join(f'"{i} {"x" * 2000 if i % 50 == 0 else "y" * 300}"' for i in range(tasks))
    (tmp / "job.toml").write_text(
        '[job]\nname = "big"\nmodule = "pi.wasm"\nargv = ["pi", "-q"]\n[inputs]\n'
        f'list = [{inputs}]\n[replication]\nreplicas = 3\n'
        'quorum = 2\nmax_replicas = 5\n[limits]\nwall_s = 7\nfuel = 123456789\n'
        '[schedule]\ndeadline = "2h"\n' + extra)
    return load_spec(tmp / "job.toml")


def _duties(tmp: Path, ledger: ShardLedgers) -> SubmitterDuties:
    blobs = SimpleNamespace(store=BlobStore(tmp / "blobs"))
    soft = SimpleNamespace(candidates=lambda: Harness().candidates())
    return SubmitterDuties(SUBMITTER, ledger, Database(tmp / "node.db"), blobs, soft)  # type: ignore[arg-type]


@pytest.mark.parametrize("shards,count", [(2, 2), (4, 3), (4, 4)])
async def test_each_part_is_an_ordinary_job_of_its_tasks_in_its_own_shard(
        tmp_path: Path, shards: int, count: int) -> None:
    ledger = ShardLedgers(shards)
    spec = _spec(tmp_path, 600)
    whole = await WholeJobs(_duties(tmp_path, ledger)).submit(spec, count, shards)
    assert not whole.refused
    assert whole.id == whole_id(whole.parts) and whole.tasks == 600
    assert len({p.shard for p in whole.parts}) == count
    inputs: list[Any] = []
    for p in whole.parts:
        assert shard_of(p.job, shards) == p.shard  # any node finds the part's committee
        job = ledger.ledgers[p.shard].jobs[p.job]  # a real job in that shard's ledger
        assert job.state == "open" and len(job.tasks) == p.count and p.first == len(inputs)
        assert len(job.spec.inputs) < p.count  # the rest came in AddInputs chunks
        inputs += [t.input for t in job.tasks]
        asked = dataclasses.replace(job.spec, inputs=(), nonce=0, total_tasks=0)
        first = ledger.ledgers[whole.parts[0].shard].jobs[whole.parts[0].job].spec
        assert asked == dataclasses.replace(first, inputs=(), nonce=0, total_tasks=0)
        assert (job.spec.replicas, job.spec.quorum, job.spec.max_replicas, job.spec.fuel,
                job.spec.wall_ms, job.spec.deadline_s, job.spec.argv, job.spec.name) == \
            (3, 2, 5, 123456789, 7000, 7200, ("pi", "-q"), "big")
    assert [i.hash for i in inputs] == [hashlib.sha256(d).digest() for d in spec.inputs]


async def test_the_whole_and_its_parts_survive_a_restart(tmp_path: Path) -> None:
    ledger = ShardLedgers(2)
    whole = await WholeJobs(_duties(tmp_path, ledger)).submit(_spec(tmp_path, 10), 2, 2)
    again = _duties(tmp_path, ledger)  # the same database, as after a restart
    wholes = WholeJobs(again)
    assert wholes.jobs[whole.id] == whole
    for p in whole.parts:
        assert again.jobs[p.job].whole == whole.id and again.jobs[p.job].tasks == p.count
    module = hashlib.sha256((tmp_path / "pi.wasm").read_bytes()).digest()
    assert module in again.blobs.store.pinned  # every part holds the module, across restarts
    again.pins.release(whole.parts[0].job)
    assert module in again.blobs.store.pinned  # until the last part lets go
    again.pins.release(whole.parts[1].job)
    assert module not in again.blobs.store.pinned


async def test_a_refused_part_refuses_the_whole_and_cancels_the_others(tmp_path: Path) -> None:
    ledger = ShardLedgers(2, refuse=(1,))
    wholes = WholeJobs(_duties(tmp_path, ledger))
    whole = await wholes.submit(_spec(tmp_path, 10), 2, 2)
    bad = next(p for p in whole.parts if p.shard == 1)
    good = next(p for p in whole.parts if p.shard == 0)
    assert whole.refused == (f"part {bad.index + 1} of 2 ({bad.words()}): its committee "
                             "refused it: this committee is full")
    assert ledger.ledgers[0].jobs[good.job].state == "cancelled"  # nothing runs out of sight
    assert bad.job not in ledger.ledgers[1].jobs
    assert not wholes.submitter.pins.db.scan("job-pins", bad.job)  # its blobs are let go
    assert WholeJobs(wholes.submitter).jobs[whole.id].refused == whole.refused  # kept, listed

"""Error feedback across FL rounds through sticky files, on real volunteers.

Three real libp2p hosts, each with its own blob store, worker pool (real worker processes) and
the real Python sandbox, run the FL task script of ``daemon/fl/sandbox/fl_task.py`` as the
ledger would offer it (only the committee is left out: offers are handed to the workers, and
their reports collected):

1. round 1 of one client on volunteers A and B: both report the same output digest, and both
   keep the same residual, the one the output's JSON line names;
2. round 2 names that residual and its holder A, on A (uses its own copy) and C (fetches it
   from A): again the same output and the same new residual on both (that the residual is
   applied, and what it does, is ``tests/daemon/fl/test_fl_task_feedback.py``);
3. a round naming a residual nobody reachable holds: the replica reports CRASHED (a node
   fault, placed elsewhere) instead of training without it;
4. any Python task may keep a file: the kept frame does not count against the output's
   limit, the rest does (OUTPUT_TOO_LARGE), and a frame over what the input allowed is
   reported as output, whole.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trio

from daemon.blobs.service import BlobService
from daemon.blobs.store import BlobStore
from protocol.sticky import StickyFile, StickyInput
from daemon.jobs.worker import WorkerDuties
from daemon.runtime import interpreter
from daemon.runtime.bundle import Bundle
from daemon.runtime.pool import PoolConfig, WorkerPool
from protocol.envelope import EnvelopeOpener, EnvelopeSealer
from protocol.messages import ledger as ops
from protocol.messages.tasks import TaskOffer, TaskStatus
from tests.daemon.p2p.conftest import identity, make_host, running, wait_until

pytestmark = pytest.mark.slow
pytest.importorskip("sklearn", reason="the FL example's data is scikit-learn's digits")

ROOT = Path(__file__).resolve().parents[3]
NET = "novacron-test-sticky"
MEMBER = b"m" * 32


class Ledger:
    """The committee's side, left out: every offer counts, every report is collected."""

    def __init__(self) -> None:
        self.results: list[ops.Result] = []

    def committee_of(self, shard: int, epoch: int) -> tuple[bytes, ...]:
        return (MEMBER,)

    async def order(self, shard: int, op: object) -> dict:
        if isinstance(op, ops.Result):
            self.results.append(op)
        return {}


class Peers:
    async def hand_over(self, *_: object) -> bool:
        return True


def fl_bundle(tmp_path: Path) -> tuple[bytes, dict[str, np.ndarray]]:
    """The FL example's round files as a Python bundle (what ``novacron fl run`` submits)."""
    from daemon.flrun.stage import read_job
    work = tmp_path / "fl"
    shutil.copytree(ROOT / "examples" / "fl", work)
    subprocess.run([sys.executable, str(work / "make_data.py"), "--shards", "10", "--dir",
                    str(work)], check=True, capture_output=True)
    contents = {**read_job(work / "job.toml").task,
                "global.npz": (work / "init.npz").read_bytes()}
    with np.load(work / "init.npz") as z:
        model = {k: z[k] for k in z.files}
    return Bundle("fl_task.py", contents).encode(), model


async def test_replicas_agree_on_update_and_residual_and_carry_it_to_the_next_round(
        tmp_path, python_cache):
    names = ("vol-a", "vol-b", "vol-c")
    first = make_host(names[0])
    async with running(first) as nursery:
        hosts = [first] + [make_host(n, bootstrap=first.listen_addrs()) for n in names[1:]]
        for h in hosts[1:]:
            await nursery.start(h.run)
        await _rounds(tmp_path, python_cache, names, hosts, nursery)
        nursery.cancel_scope.cancel()


async def _rounds(tmp_path, python_cache, names, hosts, nursery) -> None:
    bundle, model = fl_bundle(tmp_path)
    module_hash = hashlib.sha256(bundle).digest()
    runtime = interpreter.runtime_name()
    model_bytes = sum(a.astype(np.float32).nbytes for a in model.values())
    ledgers = [Ledger() for _ in names]
    blobs = [BlobService(BlobStore(tmp_path / n), h, EnvelopeSealer(identity(n), NET, context=1),
                         EnvelopeOpener(NET)) for n, h in zip(names, hosts)]
    pools = [WorkerPool(PoolConfig(workers=1, nice=0, max_memory_mb=512,
                                   python_cache_dir=python_cache)) for _ in names]
    duties = [WorkerDuties(p, b, led, Peers())  # type: ignore[arg-type]
              for p, b, led in zip(pools, blobs, ledgers)]
    for d in duties:
        d.more_runtimes = (runtime,)
    a, b, c = range(3)
    submitter = hosts[a].node_id
    blobs[a].store.put(bundle, pin=True)  # A submits: every worker fetches the module from it
    task_no = iter(range(100))

    async def run(worker: int, envelope: StickyInput, task: int | None = None,
                  replica: int = 0, module: bytes = bundle,
                  max_output: int = model_bytes + 8192) -> tuple[ops.Result, bytes]:
        data = envelope.encode()  # small: inline in the offer, as the ledger sends it
        offer = TaskOffer(0, 0, b"j" * 32, next(task_no) if task is None else task, replica,
                          submitter, hashlib.sha256(module).digest(),
                          len(module), hashlib.sha256(data).digest(), len(data), data,
                          ("task",), 50_000_000_000, 256 * 16, 300_000,
                          max_output, 0, 60_000, runtime)  # the update alone: not the kept
        before = len(ledgers[worker].results)
        duties[worker].on_offer(MEMBER, offer)
        await wait_until(lambda: len(ledgers[worker].results) > before, 240, "a result")
        result = ledgers[worker].results[-1]
        output = blobs[worker].store.get(result.output_hash) or b""
        return result, output

    async def both(workers: tuple[int, int], envelope: StickyInput) -> list[tuple[ops.Result, bytes]]:
        """Two replicas at once, as placement runs them (each volunteer its own process)."""
        out: dict[int, tuple[ops.Result, bytes]] = {}
        task = next(task_no)

        async def one(w: int, replica: int) -> None:
            out[w] = await run(w, envelope, task, replica)
        async with trio.open_nursery() as inner:
            for replica, w in enumerate(workers):
                inner.start_soon(one, w, replica)
        return [out[w] for w in workers]

    def head(output: bytes) -> dict:
        return json.loads(output.partition(b"\n")[0])

    await wait_until(lambda: len(hosts[0].connected_peers()) >= 2, 10)
    for p, d in zip(pools, duties):
        await nursery.start(p.run)
        await nursery.start(d.run)
    keep = model_bytes
    line = "shards/001.npz 1 int4 1 7 ef=new"
    # round 1 on A and B: one output, one residual, named by the output
    (ra, oa), (rb, ob) = await both((a, b), StickyInput(line.encode(), (), keep))
    assert ra.status == rb.status == TaskStatus.OK, (ra.detail, rb.detail)
    assert ra.output_hash == rb.output_hash and oa == ob
    ef = head(oa)["ef"]
    assert ef["size"] == model_bytes and ef["applied"] is None and 0 < ef["norm"] < 1
    digest = bytes.fromhex(ef["sha256"])
    assert [digest in d.kept for d in duties] == [True, True, False]
    assert not oa.startswith(b"\x00"), "the kept frame is not reported as output"
    # round 2 names it and its holder A: A uses its own copy, C fetches it from A
    residual = StickyFile("residual", digest, ef["size"], (hosts[a].node_id,))
    line2 = f"shards/001.npz 2 int4 1 7 ef={ef['sha256']}"
    (r2a, o2a), (r2c, o2c) = await both((a, c), StickyInput(line2.encode(), (residual,), keep))
    assert r2a.status == r2c.status == TaskStatus.OK, (r2a.detail, r2c.detail)
    assert o2a == o2c and head(o2a)["ef"]["applied"] == ef["sha256"]
    digest2 = bytes.fromhex(head(o2a)["ef"]["sha256"])
    assert digest2 in duties[a].kept and digest2 in duties[c].kept and digest2 != digest
    assert duties[a].sticky_held == 1 and duties[c].sticky_fetched == 1
    # a residual nobody reachable holds: CRASHED, never a result computed without it
    gone = StickyFile("residual", hashlib.sha256(b"lost").digest(), ef["size"],
                      (hosts[b].node_id,))
    r3, _ = await run(c, StickyInput(line2.encode(), (gone,), keep))
    assert r3.status == TaskStatus.CRASHED and "could not fetch" in r3.detail
    # any Python task may keep a file: the frame is outside the output's limit, the rest is
    # not; a frame larger than the input allowed is reported as output, whole
    tiny = Bundle("t.py", {"t.py": (
        "import sys\nn, out = (int(x) for x in sys.stdin.read().split())\n"
        "sys.stdout.buffer.write(b'\\x00novacron-keep\\x01' + n.to_bytes(4, 'big')"
        " + b'k' * n + b'o' * out)\n").encode()}).encode()
    blobs[a].store.put(tiny, pin=True)
    fits, out = await run(c, StickyInput(b"5000 100", (), 5000), module=tiny, max_output=200)
    assert fits.status == TaskStatus.OK and out == b"o" * 100, fits.detail
    assert hashlib.sha256(b"k" * 5000).digest() in duties[c].kept
    big, _ = await run(c, StickyInput(b"100 300", (), 5000), module=tiny, max_output=200)
    assert big.status == TaskStatus.OUTPUT_TOO_LARGE, big.detail
    whole, out = await run(c, StickyInput(b"100 10", (), 50), module=tiny, max_output=200)
    assert whole.status == TaskStatus.OK and out.startswith(b"\x00novacron-keep")

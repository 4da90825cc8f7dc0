"""The node's FL round loop (``daemon.flrun.driver``) over real SQLite and a real blob store,
with the network's job path and the sandbox's evaluation as in-process stand-ins, in virtual
time: a run's rounds, a daemon stopped mid-round and started again (its round's job taken
over when the node still knows it, the round submitted again when not), a round with nothing
certified, a failing evaluate(), and cancel."""

from __future__ import annotations

import io
import json

import msgpack
import numpy as np
import pytest
import trio
import trio.testing

from daemon.blobs.store import BlobStore
from daemon.fl import FLError
from daemon.fl.rounds import RunState, TaskResult
from daemon.fl.uplink import FLOAT32, encode_update
from daemon.flrun.driver import FLDriver, Waiting, pack_files
from daemon.flrun.service import StoreBlobs
from daemon.flrun.stage import model_bytes
from daemon.flrun.store import Run, RunStore
from daemon.storage.db import Database

TARGET = np.arange(1, 5, dtype=np.float32)
JOB = """[fl]
script = "train.py"
model = "init.npz"
shards = ["s/*"]
test = "test.npz"
rounds = 3
clients_per_round = 2
codec = "float32"
"""


class Network:
    """The job path: each task moves the model half-way to ``TARGET`` (a real encoded update
    in ``fl_task.py``'s output form), certified after ``polls`` progress queries."""

    def __init__(self, polls: int = 2, fail: bool = False) -> None:
        self.polls = polls
        self.fail = fail
        self.jobs: dict[bytes, dict] = {}
        self.submitted: list[bytes] = []
        self.cancelled: list[bytes] = []
        self.unavailable = 0

    async def links(self):
        return {}, []

    async def submit(self, name, files, inputs, **limits):
        if self.unavailable:
            self.unavailable -= 1
            raise Waiting("the committee cannot be reached")
        with np.load(io.BytesIO(files["global.npz"])) as z:
            model = {k: z[k] for k in z.files}
        job = bytes([len(self.submitted)]) * 32
        self.jobs[job] = {"inputs": inputs, "model": model, "polls": 0}
        self.submitted.append(job)
        return job

    def known(self, job):
        return job in self.jobs

    async def progress(self, job):
        j = self.jobs[job]
        j["polls"] += 1
        done = j["polls"] >= self.polls
        state = "failed" if self.fail and done else "accepted" if done else "open"
        return ("done" if done else "open"), [(t, state) for t in range(len(j["inputs"]))]

    async def certified(self, job, task):
        j = self.jobs[job]
        shard = j["inputs"][task].split()[0]
        update = {"w": (TARGET - j["model"]["w"]) / 2}
        head = {"shard": shard, "round": 1, "samples": 10, "loss": 1.0, "codec": "float32"}
        out = json.dumps(head).encode() + b"\n" + encode_update(update, FLOAT32)
        return TaskResult(task, "OK", out, (f"v{task}",), "d", ("checked",), {})

    async def gather(self, job):
        pass

    async def cancel(self, job):
        self.cancelled.append(job)


class Evaluator:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls = 0

    async def evaluate(self, run, files, test, model_npz):
        self.calls += 1
        if self.fail:
            raise FLError("evaluate() in the FL script failed in the sandbox: TRAPPED")
        assert test == b"the test set" and "train.py" in files
        with np.load(io.BytesIO(model_npz)) as z:
            w = z["w"]
        return {"loss": float(np.abs(w - TARGET).sum()),
                "accuracy": float(1 - np.abs(w - TARGET).sum() / TARGET.sum())}


@pytest.fixture
def node(tmp_path):
    db = Database(tmp_path / "node.db")
    blobs = StoreBlobs(BlobStore(tmp_path / "blobs"))
    yield db, blobs
    db.close()


def _run(blobs: StoreBlobs, rounds: int = 3) -> Run:
    files = {"fl_task.py": b"", "train.py": b"def train(): pass",
             **{f"s/{i}": bytes([i]) for i in range(4)}}
    digests = [blobs.put(pack_files(files), pin=True), blobs.put(b"the test set", pin=True),
               blobs.put(model_bytes({"w": np.zeros(4, np.float32)}), pin=True)]
    files_d, test_d, model_d = digests
    return Run(b"\x07" * 32, "demo", JOB.replace("rounds = 3", f"rounds = {rounds}"),
               "job.toml", "/x/job.toml", tuple(f"s/{i}" for i in range(4)), files=files_d,
               test=test_d, model=model_d, submitted_ms=1)


def _now_ms() -> int:
    return int(trio.current_time() * 1000)


def _driver(db, blobs, net, evaluator=None):
    return FLDriver(RunStore(db), net, evaluator or Evaluator(), blobs, _now_ms)


async def _until(driver, run_id, check):
    while not check(driver.runs[run_id]):
        await driver.changed.wait()


def _run_to_its_end(db, blobs, net) -> Run:
    """A fresh run on a fresh driver, in virtual time, until it ends (done or failed)."""
    async def main():
        driver = _driver(db, blobs, net)
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            run = _run(blobs)
            driver.add(run)
            await _until(driver, run.id, lambda r: r.state.ended)
            nursery.cancel_scope.cancel()
        return run

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_run_trains_every_round_and_records_each(node):
    db, blobs = node
    net = Network()

    run = _run_to_its_end(db, blobs, net)
    assert run.state is RunState.DONE and run.done == 3 and run.inflight is None
    history = RunStore(db).history(run.id)
    assert [r["round"] for r in history] == [1, 2, 3]
    assert [r["job"] for r in history] == [j.hex() for j in net.submitted]
    acc = [r["accuracy"] for r in history]
    assert acc == sorted(acc) and acc[-1] > 0.8  # 1 - 1/8 after three halvings
    assert all(r["updates"] == 2 and r["tasks"][0]["workers"] == ["v0"] for r in history)
    assert all(r["seconds"] >= 1.0 and "attempts" not in r for r in history)  # 2 polls each
    # the final model is kept (a result is written from it); the run's files no longer are
    store = blobs.store
    assert run.model in store.pinned and run.files not in store.pinned
    again = RunStore(db).load()[0]
    assert (again.state, again.done, again.model) == (RunState.DONE, 3, run.model)
    assert again.clients["s/0" if "s/0" in again.clients else next(iter(again.clients))]


@pytest.mark.parametrize("forgotten", [False, True])
def test_a_daemon_stopped_mid_round_resumes_that_round(node, forgotten):
    """Stopped while round 2's job runs; started again over the same database: the round's
    job is taken over (or, if the node no longer knows it, the round is submitted again)."""
    db, blobs = node
    net = Network(polls=4)

    async def first_life():
        driver = _driver(db, blobs, net)
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            run = _run(blobs)
            driver.add(run)
            await _until(driver, run.id, lambda r: r.done == 1)
            while not (run.inflight and run.inflight.job):
                await trio.sleep(0.5)
            nursery.cancel_scope.cancel()  # the daemon dies with round 2 in flight

    async def second_life():
        if forgotten:
            net.jobs.pop(net.submitted[-1])
        driver = _driver(db, blobs, net)  # as a restarted daemon builds it
        run = next(iter(driver.runs.values()))
        assert run.done == 1 and run.inflight.plan.round == 2
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            await _until(driver, run.id, lambda r: r.state.ended)
            nursery.cancel_scope.cancel()
        return run

    clock = trio.testing.MockClock(autojump_threshold=0)
    trio.run(first_life, clock=clock)
    in_flight = net.submitted[-1]
    run = trio.run(second_life, clock=clock)
    history = RunStore(db).history(run.id)
    assert run.state is RunState.DONE and [r["round"] for r in history] == [1, 2, 3]
    assert len(net.submitted) == (4 if forgotten else 3)
    assert (history[1]["job"] == in_flight.hex()) is not forgotten
    assert history[1]["tasks"][0]["shard"] == history[1]["tasks"][0]["shard"]  # same plan


def test_a_round_with_nothing_certified_is_tried_again_then_the_run_fails(node):
    db, blobs = node
    net = Network(fail=True)
    net.unavailable = 2  # and the committee is away twice: the driver waits, then submits

    run = _run_to_its_end(db, blobs, net)
    assert run.state is RunState.FAILED and run.done == 0 and len(net.submitted) == 3
    assert run.inflight.attempt == 3
    assert run.error.startswith("round 1: no client's update was certified (task failed)")
    assert RunStore(db).load()[0].state is RunState.FAILED
    assert run.files not in blobs.store.pinned


def test_a_failing_evaluate_ends_the_run_in_one_line_and_cancel_stops_one(node):
    db, blobs = node

    async def main():
        driver = _driver(db, blobs, Network(), Evaluator(fail=True))
        slow = Network(polls=10_000)
        async with trio.open_nursery() as nursery:
            await nursery.start(driver.run)
            run = _run(blobs)
            driver.add(run)
            await _until(driver, run.id, lambda r: r.state.ended)
            other = FLDriver(RunStore(db), slow, Evaluator(), blobs, lambda: 5)
            await nursery.start(other.run)
            second = _run(blobs)
            second.id = b"\x08" * 32
            other.add(second)
            while not (second.inflight and second.inflight.job):
                await trio.sleep(1)
            await other.cancel(second)
            nursery.cancel_scope.cancel()
        return run, second, slow

    run, second, slow = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert run.state is RunState.FAILED and "evaluate() in the FL script failed" in run.error
    assert "\n" not in run.error
    assert second.state is RunState.CANCELLED and slow.cancelled == [second.inflight.job]

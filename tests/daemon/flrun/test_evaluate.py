"""The model's evaluation in the node's own Python sandbox (``SandboxEvaluator``): the user's
``evaluate`` runs on the test set in the same interpreter, limits and isolation as any task
(here the sandbox is called directly, as the pool's worker process would), and what goes wrong
is one line that ends the run, or a wait when the sandbox cannot run now."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import trio

from daemon.fl import FLError
from daemon.flrun.driver import Waiting
from daemon.flrun.service import SandboxEvaluator
from daemon.flrun.stage import codec_files
from daemon.flrun.store import Run
from daemon.runtime import PoolPaused
from daemon.runtime.pysandbox import PythonSandbox

JOB = '[fl]\nscript = "train.py"\nmodel = "m.npz"\nshards = ["s/*"]\ntest = "data/test.npz"\n'


class SandboxPool:
    """The pool's ``run_task``, run by the sandbox in this process."""

    def __init__(self, sandbox: PythonSandbox | None) -> None:
        self.sandbox = sandbox

    async def run_task(self, digest, bundle, stdin, limits, *, seed, argv):
        if self.sandbox is None:
            raise PoolPaused("outside the volunteer's hours")
        return self.sandbox.run(bundle, stdin, limits, seed=seed, argv=argv)


@pytest.fixture(scope="module")
def sandbox(python_cache: Path) -> PythonSandbox:
    return PythonSandbox(python_cache)


def _evaluate(pool, script: str) -> dict[str, float]:
    run = Run(b"\x01" * 32, "t", JOB, "job.toml", "/x", ("s/0",), b"", b"", b"", 0)
    files = {**codec_files(), "train.py": script.encode(), "helper.py": b"K = 2\n",
             "s/0": b"shard bytes"}
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(4, dtype=np.float32), y=np.ones(4, np.float32))
    model = io.BytesIO()
    np.savez(model, w=np.full(3, 0.5, np.float32))
    return trio.run(SandboxEvaluator(pool).evaluate, run, files, buf.getvalue(),
                    model.getvalue())


def test_evaluate_runs_in_the_sandbox_on_the_test_set(sandbox: PythonSandbox) -> None:
    script = ("import numpy as np, helper\n"
              "def train(*a): pass\n"
              "def evaluate(params, path):\n"
              "    d = np.load(path)\n"
              "    return {'loss': float(params['w'].sum() * helper.K),\n"
              "            'accuracy': float(d['y'].mean()) / 2}\n")
    assert _evaluate(SandboxPool(sandbox), script) == {"loss": 3.0, "accuracy": 0.5}


def test_a_failing_evaluate_is_one_line(sandbox: PythonSandbox) -> None:
    broken = "def train(*a): pass\ndef evaluate(params, path):\n    return 1 / 0\n"
    with pytest.raises(FLError, match="failed in the sandbox: EXITED.*ZeroDivisionError") as err:
        _evaluate(SandboxPool(sandbox), broken)
    assert "\n" not in str(err.value)


def test_a_paused_sandbox_makes_the_evaluation_wait() -> None:
    with pytest.raises(Waiting, match="paused"):
        _evaluate(SandboxPool(None), "def train(): pass\ndef evaluate(): pass\n")


def test_the_shards_and_the_codec_stay_out_of_the_evaluation() -> None:
    from daemon.runtime.bundle import decode
    from daemon.runtime.outcome import TaskOutcome
    from protocol.messages.tasks import TaskStatus

    class Recorder:
        async def run_task(self, digest, bundle, stdin, limits, *, seed, argv):
            self.bundle, self.stdin = decode(bundle), stdin
            return TaskOutcome(TaskStatus.OK, "", b'{"loss": 1, "accuracy": 0.25}')

    pool = Recorder()
    assert _evaluate(pool, "def train(): pass\ndef evaluate(): pass\n") == {
        "loss": 1.0, "accuracy": 0.25}
    assert pool.bundle.script == "fl_eval.py" and pool.stdin == b"data/test.npz"
    assert sorted(pool.bundle.files) == ["data/test.npz", "fl_eval.py", "helper.py",
                                         "novacron_model.npz", "train.py"]

    class Wrong(Recorder):
        async def run_task(self, *args, **kwargs):
            return TaskOutcome(TaskStatus.OK, "", b'{"acc": 1}')

    with pytest.raises(FLError, match=r"must return \{'loss'"):
        _evaluate(Wrong(), "def train(): pass\ndef evaluate(): pass\n")


def test_a_node_that_will_never_run_python_refuses_fl_runs() -> None:
    from daemon.flrun.service import python_refusal

    assert python_refusal("ready", "") is None and python_refusal("compiling", "") is None
    why = python_refusal("declined", "the volunteer declined Python tasks (volunteer.python)")
    assert why and "its Python runtime is declined (the volunteer declined" in why
    assert "\n" not in why

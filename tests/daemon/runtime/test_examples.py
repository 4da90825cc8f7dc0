"""The examples as a newcomer uses them: committed .wasm matching their sources, job files whose
limits fit their tasks, the local runner, and the pi combiner."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import Limits
from daemon.runtime.sandbox import Sandbox
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime.modules import ROOT

EXAMPLES = ROOT / "examples"
BUILT = ["examples/pi/pi.wasm", "examples/sweep/sweep.wasm", "examples/life/life.wasm",
         "tests/daemon/runtime/wasm/probe.wasm", "tests/daemon/runtime/wasm/hog.wasm"]


@pytest.mark.skipif(shutil.which("clang") is None or not Path("/usr/include/wasm32-wasi").is_dir(),
                    reason="clang or wasi-libc not installed (users and CI need neither)")
def test_committed_wasm_is_what_build_sh_makes(tmp_path):
    subprocess.run(["bash", str(EXAMPLES / "build.sh"), str(tmp_path)], check=True,
                   capture_output=True, timeout=300)
    for rel in BUILT:
        assert (tmp_path / rel).read_bytes() == (ROOT / rel).read_bytes(), f"{rel} is stale"


@pytest.mark.parametrize("name", ["pi", "sweep", "life"])
def test_job_files_limits_fit_their_first_and_last_task(name):
    job = tomllib.loads((EXAMPLES / name / "job.toml").read_text())
    wasm = (EXAMPLES / name / job["job"]["module"]).read_bytes()
    lim = job["limits"]
    limits = Limits(fuel=lim["fuel"], memory_pages=lim["memory_mb"] * 16, wall_s=lim["wall_s"],
                    max_output=lim["max_output_bytes"])
    first, end = job["inputs"]["range"]
    sandbox = Sandbox()
    for i in (first, end - 1):
        stdin = job["inputs"]["template"].format(i=i).encode()
        out = sandbox.run(module_hash(wasm), wasm, stdin, limits,
                          argv=tuple(a.encode() for a in job["job"]["argv"]))
        assert out.status is TaskStatus.OK, out.detail
        assert out.fuel_used < limits.fuel // 2  # room for a slower path, not a hair's breadth
        assert out.output.endswith(b"\n") and len(out.output) <= limits.max_output


def test_local_runner_prints_output_and_status():
    done = subprocess.run([sys.executable, "-m", "daemon.runtime", str(EXAMPLES / "pi" / "pi.wasm"),
                           "--input", "7 1000"], capture_output=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0
    assert done.stdout == b"763 1000\n"
    assert done.stderr.startswith(b"OK: ok; fuel ")


def test_local_runner_reports_a_failed_task_and_a_missing_file():
    fail = subprocess.run([sys.executable, "-m", "daemon.runtime", str(EXAMPLES / "pi" / "pi.wasm"),
                           "--input", "7 1000000", "--fuel", "1000"], capture_output=True,
                          timeout=60, cwd=ROOT)
    assert fail.returncode == 1
    assert fail.stderr.startswith(b"OUT_OF_FUEL: out of fuel after 1,000 units")
    missing = subprocess.run([sys.executable, "-m", "daemon.runtime", "nope.wasm", "--input", ""],
                             capture_output=True, timeout=60, cwd=ROOT)
    assert missing.returncode == 2 and missing.stderr.startswith(b"cannot read nope.wasm")


def test_pi_combiner_sums_task_outputs(tmp_path):
    results = tmp_path / "results.txt"
    results.write_text("785526 1000000\n785200 1000000\n\n")
    done = subprocess.run([sys.executable, str(EXAMPLES / "pi" / "combine.py"), str(results)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert done.stdout.startswith("pi ~= 3.14145200 from 2,000,000 samples in 2 tasks")
    results.write_text("oops\n")
    bad = subprocess.run([sys.executable, str(EXAMPLES / "pi" / "combine.py"), str(results)],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "expected '<inside> <samples>'" in bad.stderr

"""Issue 15's end-to-end check: a Python numpy job on a 5-node testnet, submitted with the
Python client, completes with every certificate verified against the genesis, and both
replicas of each task report the same output digest and the same fuel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from novacron import Client
from tests.e2e.cli import as_json, eventually, node_dir, ok, run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def testnet(tmp_path_factory, python_cache):
    d = tmp_path_factory.mktemp("python") / "tn"
    ok("testnet", "up", "-n", "5", "--dir", str(d), "--seed", "15", timeout=180)
    yield d
    run("testnet", "down", "--dir", str(d))


def python_ready(testnet: Path, n: int) -> bool:
    """Every node's interpreter is ready, and node 0 sees all of them offer ``python``."""
    for i in range(n):
        st = as_json("status", "--data-dir", node_dir(testnet, i))["services"]["python"]
        if st["state"] != "ready":
            return False
    with Client(node_dir(testnet, 0)) as nc:
        records = nc.call("capabilities")["records"]
    return sum("python" in r["runtimes"] for r in records) == n


def test_numpy_job_through_the_python_client(testnet: Path, tmp_path: Path) -> None:
    eventually(lambda: python_ready(testnet, 5), timeout=120, what="python on every node")
    work = tmp_path / "sweep"
    shutil.copytree(ROOT / "examples" / "python" / "sweep", work)
    grid = (work / "grid.txt").read_text().splitlines()[:6]

    with Client(node_dir(testnet, 0), genesis=testnet / "genesis.toml") as nc:
        results = list(nc.map(work / "task.py", grid, replicas=2, timeout=600,
                              files=["model.py", "params.json"], fuel=50_000_000_000,
                              memory_mb=256, wall_s=300))
        assert sorted(r.task for r in results) == list(range(len(grid)))
        for r in results:
            assert any("committee" in c for c in r.checks), r.checks  # checked against genesis
            row = json.loads(r.output)
            drive, damping = (float(x) for x in grid[r.task].split())
            assert (row["drive"], row["damping"]) == (drive, damping)
        job = results[0].job
        assert nc.status(job)["state"] == "done"

    for task in range(len(grid)):
        ex = as_json("explain", job[:12], str(task), "--data-dir", node_dir(testnet, 0))
        agreed = [r for r in ex["replicas"] if r["result"] and r["result"]["status"] == "OK"]
        assert len(agreed) >= 2, ex["replicas"]
        assert len({r["result"]["output_sha256"] for r in agreed}) == 1
        assert len({r["fuel_used"] for r in agreed}) == 1 and agreed[0]["fuel_used"] > 10**9
        assert ex["replicas"][0]["worker"] != ex["replicas"][1]["worker"]


def test_novacron_run_submits_a_script_and_prints_verified_results(testnet: Path,
                                                                    tmp_path: Path) -> None:
    eventually(lambda: python_ready(testnet, 5), timeout=120, what="python on every node")
    work = tmp_path / "pi"
    shutil.copytree(ROOT / "examples" / "python" / "pi", work)
    res = run("run", str(work / "task.py"), "--input", "1 100000", "--input", "2 100000",
              "--genesis", str(testnet / "genesis.toml"), "--timeout", "300",
              "--data-dir", node_dir(testnet, 1), timeout=400)
    assert res.returncode == 0, res.stderr
    lines = sorted(res.stdout.splitlines())
    assert [line.split(":")[0] for line in lines] == ["task 0", "task 1"]
    assert all(line.endswith(" 100000") for line in lines)
    assert "2 results, each verified against its certificate" in res.stderr

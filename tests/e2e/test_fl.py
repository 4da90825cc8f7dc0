"""Issue 16's end-to-end check: a 3-round FL job on a 5-node testnet completes, every update
certified (each round's tasks replicated, their digests agreeing, each certificate verified
against the genesis), and the model's accuracy rises. Each client's level is chosen from the
link estimates the nodes publish, and the history says which and why (on 127.0.0.1 every link
is fast, so levels that differ between a fast and a slow link are shown by
``tests/daemon/fl/test_driver_offline.py`` with measured estimates)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.cli import as_json, eventually, node_dir, ok, run
from tests.e2e.test_python import python_ready

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
pytest.importorskip("sklearn", reason="the FL example's data is scikit-learn's digits")


@pytest.fixture(scope="module")
def testnet(tmp_path_factory, python_cache):
    d = tmp_path_factory.mktemp("fl") / "tn"
    ok("testnet", "up", "-n", "5", "--dir", str(d), "--seed", "16", timeout=180)
    yield d
    run("testnet", "down", "--dir", str(d))


def test_three_rounds_certified_and_accuracy_rises(testnet: Path, tmp_path: Path) -> None:
    work = tmp_path / "fl"
    shutil.copytree(ROOT / "examples" / "fl", work)
    subprocess.run([sys.executable, str(work / "make_data.py"), "--shards", "5", "--dir",
                    str(work)], check=True)
    spec = (work / "job.toml").read_text()
    spec = spec.replace("rounds = 20", "rounds = 3").replace("clients_per_round = 5",
                                                            "clients_per_round = 3")
    assert "rounds = 3" in spec and "clients_per_round = 3" in spec
    (work / "job.toml").write_text(spec)
    init = np.load(work / "init.npz")
    eventually(lambda: python_ready(testnet, 5), timeout=120, what="python on every node")

    out = tmp_path / "out"
    res = run("fl", "run", str(work / "job.toml"), "-o", str(out), "--genesis",
              str(testnet / "genesis.toml"), "--timeout", "600", "--data-dir",
              node_dir(testnet, 0), timeout=1200)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if not line.startswith("  ")]
    assert [line.split(":")[0] for line in lines] == ["round 1", "round 2", "round 3"], lines
    assert all("3/3 updates certified" in line for line in lines), lines
    clients = [line for line in res.stdout.splitlines() if line.startswith("  ")]
    assert len(clients) == 9 and all("largest reward for" in c for c in clients), clients

    history = json.loads((out / "history.json").read_text())
    assert [row["round"] for row in history] == [1, 2, 3]
    levels = {"float16", "int8", "int4", "sign1"}
    for row in history:
        assert row["updates"] == 3 and row["lost"] == 0
        assert row["codec"] == "adaptive" and sum(row["levels"].values()) == 3
        for task in row["tasks"]:
            assert task["status"] == "OK"
            assert any("committee" in c for c in task["checks"]), task["checks"]
            # each client's level, the link it was chosen for and the reward of every level
            assert task["codec"] in levels and task["link"]["basis"] in (
                "prior", "previous", "volunteers"), task
            best = max(task["levels"], key=lambda r: r[3])
            assert best[0] == task["codec"] and len(task["workers"]) >= 2
    # round 1's outputs, fetched by the submitter's node, measured its links to the workers:
    # later rounds plan on those published estimates, not on the prior
    later = [t["link"] for row in history[1:] for t in row["tasks"]]
    assert any(link["basis"] != "prior" and link["node"] for link in later), later
    seen = as_json("links", "--data-dir", node_dir(testnet, 0))
    assert seen["links"] and all(p["samples"] >= 1 for p in seen["links"].values()), seen
    published = as_json("status", "--data-dir", node_dir(testnet, 0))[
        "services"]["softstate"]["links"]["published"]
    assert published and {p["peer"] for p in published} <= set(seen["volunteers"]), published
    first = history[0]["accuracy"]
    assert history[-1]["accuracy"] > first, [r["accuracy"] for r in history]
    # untrained: about one in ten; trained: well above it
    from novacron.fl import _user_module, load_npz
    train = _user_module(work / "train.py")  # the example's own evaluate, as the driver's
    before = train.evaluate({k: init[k] for k in init.files}, str(work / "test.npz"))
    assert history[-1]["accuracy"] > before["accuracy"] + 0.2
    model = load_npz(out / "model.npz", "model")
    assert sorted(model) == sorted(init.files)

    # a second run into the same directory is refused in one line, and loses nothing
    again = run("fl", "run", str(work / "job.toml"), "-o", str(out), "--data-dir",
                node_dir(testnet, 0), timeout=120)
    assert again.returncode != 0 and "already holds 3 rounds of a run: add --resume" in again.stderr
    assert json.loads((out / "history.json").read_text()) == history
    # --resume checks the saved model against the history's digest, and finds nothing to do
    done = run("fl", "run", str(work / "job.toml"), "-o", str(out), "--resume", "--data-dir",
               node_dir(testnet, 0), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "3 rounds; model and history in" in done.stderr

    # both replicas of a round's task agreed on the update's bytes
    job = history[-1]["job"]
    ex = as_json("explain", job[:12], "0", "--data-dir", node_dir(testnet, 0))
    agreed = [r for r in ex["replicas"] if r["result"] and r["result"]["status"] == "OK"]
    assert len(agreed) >= 2 and len({r["result"]["output_sha256"] for r in agreed}) == 1

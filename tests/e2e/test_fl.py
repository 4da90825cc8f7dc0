"""Issue 16's end-to-end check, driven by the submitter's daemon: a 3-round FL job on a 5-node
testnet completes, every update certified (each round's tasks replicated, their digests
agreeing, each certificate verified against the genesis), and the model's accuracy rises.

The round loop runs in node 0's daemon (``daemon.flrun``): ``novacron fl run`` only submits,
watches and writes the result. The daemon is killed (SIGKILL) while round 1's job is in flight
and started again: it resumes the run at that round, taking the same job's certified results,
and ``fl run --resume`` re-attaches to it. Each client's level is chosen from the link
estimates the nodes publish, and the history says which and why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from novacron import Client
from tests.e2e.cli import CLI, as_json, eventually, node_dir, ok, run
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


def _example(tmp_path: Path) -> Path:
    work = tmp_path / "fl"
    shutil.copytree(ROOT / "examples" / "fl", work)
    subprocess.run([sys.executable, str(work / "make_data.py"), "--shards", "5", "--dir",
                    str(work)], check=True)
    spec = (work / "job.toml").read_text()
    spec = spec.replace("rounds = 20", "rounds = 3").replace("clients_per_round = 5",
                                                            "clients_per_round = 3")
    assert "rounds = 3" in spec and "clients_per_round = 3" in spec
    (work / "job.toml").write_text(spec)
    return work


def _round_job_in_flight(node0: str, out: Path) -> str | None:
    """Round 1's job id once the daemon holds a certified update of it (None before)."""
    if not (out / "run.json").exists():
        return None
    ident = json.loads((out / "run.json").read_text())["run"]
    with Client(node0) as c:
        st = c.call("fl.status", run=ident)
    assert st["done"] == 0, st  # still in round 1
    return st["round_job"] if (st["progress"] or {}).get("certified") else None


def test_three_rounds_certified_accuracy_rises_across_a_daemon_restart(
        testnet: Path, tmp_path: Path) -> None:
    work = _example(tmp_path)
    init = np.load(work / "init.npz")
    eventually(lambda: python_ready(testnet, 5), timeout=120, what="python on every node")
    node0 = node_dir(testnet, 0)
    out = tmp_path / "out"
    args = ["fl", "run", str(work / "job.toml"), "-o", str(out), "--genesis",
            str(testnet / "genesis.toml"), "--timeout", "900", "--data-dir", node0]

    # fl run submits; the daemon runs round 1's job; the daemon is killed mid-round
    first = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        job1 = eventually(lambda: _round_job_in_flight(node0, out), timeout=120,
                          what="round 1's job submitted by the daemon")
        ok("testnet", "kill", "0", "--dir", str(testnet))
        stdout1, stderr1 = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode != 0 and stderr1.strip().splitlines()[-1].startswith("novacron:")
    ident = json.loads((out / "run.json").read_text())["run"]
    assert ident.startswith("fl-") and f"run {ident} submitted" in stderr1

    # started again, the daemon resumes the run at round 1 with the same job; re-attach
    run("testnet", "restart", "0", "--dir", str(testnet), timeout=120)  # slow under load
    eventually(lambda: run("status", "--data-dir", node0).returncode == 0, timeout=120,
               what="node 0 to answer again")
    res = run(*args, "--resume", timeout=1500)
    assert res.returncode == 0, res.stderr
    printed = stdout1 + res.stdout
    lines = [line for line in printed.splitlines() if not line.startswith("  ")]
    assert [line.split(":")[0] for line in lines] == ["round 1", "round 2", "round 3"], printed
    # round 1's tasks that needed node 0 (it serves the round's files) while it was down
    # may be lost; the later rounds have every update
    assert all("3/3 updates certified" in line for line in lines[1:]), lines
    clients = [line for line in printed.splitlines() if line.startswith("  ")]
    assert all("largest reward for" in c or ": lost (" in c for c in clients), clients

    history = json.loads((out / "history.json").read_text())
    assert [row["round"] for row in history] == [1, 2, 3]
    assert history[0]["job"] == job1  # the in-flight round's job, taken over, not resubmitted
    levels = {"float16", "int8", "int4", "sign1"}
    assert history[0]["updates"] >= 1 and history[0]["updates"] + history[0]["lost"] == 3
    assert len(clients) == 6 + history[0]["updates"] + history[0]["lost"]
    for row in history:
        assert row["updates"] == 3 or row is history[0]
        assert row["codec"] == "adaptive" and sum(row["levels"].values()) == row["updates"]
        for task in row["tasks"]:
            if task["status"] != "OK":
                continue
            assert any("committee" in c and "is the one" in c for c in task["checks"]), task
            assert task["codec"] in levels and task["link"]["basis"] in (
                "prior", "previous", "volunteers"), task
            best = max(task["levels"], key=lambda r: r[3])
            assert best[0] == task["codec"] and len(task["workers"]) >= 2
    # error feedback: every certified update names the residual its volunteers kept; a
    # client's next task names that residual and its holders (or says why it was reset), and
    # its volunteers applied it, whether they held it or fetched it from the holders
    size = 4 * sum(init[k].size for k in init.files)
    kept: dict[str, dict] = {}
    applied = 0
    for row in history:
        assert row["error_feedback"] is True and row["selection"] == "random"
        for task in row["tasks"]:
            ef, shard = task["ef"], task["shard"]
            if shard in kept:
                assert ef["residual"] == kept[shard]["sha256"] or ef.get("reset"), task
            if task["status"] == "OK":
                assert ef["kept"]["size"] == size and len(ef["kept"]["sha256"]) == 64, task
                assert ef["kept"]["applied"] == ef["residual"], task
                applied += ef["residual"] is not None
                kept[shard] = {**ef["kept"], "workers": task["workers"]}
    assert applied >= 1, "no client's residual was carried into its next round"
    later = [t["link"] for row in history[1:] for t in row["tasks"]]
    assert any(link["basis"] != "prior" and link["node"] for link in later), later
    first_acc = history[0]["accuracy"]
    assert history[-1]["accuracy"] > first_acc, [r["accuracy"] for r in history]
    from daemon.flrun.stage import load_model
    from novacron.fl import load_npz
    model = load_npz(out / "model.npz", "model")
    assert sorted(model) == sorted(init.files)
    from daemon.fl.rounds import model_digest
    assert model_digest(model) == history[-1]["model_sha256"]
    assert load_model((out / "model.npz").read_bytes())

    # the node answers for the run: jobs lists it, status and result by its id
    listed = as_json("jobs", "--data-dir", node0)["fl_runs"]
    assert [(r["run"], r["state"], r["done"]) for r in listed] == [(ident, "done", 3)]
    status = run("status", ident[:10], "--data-dir", node0)
    assert status.returncode == 0 and "done: 3/3 rounds, accuracy" in status.stdout
    again = tmp_path / "again"
    ok("result", ident[:10], "-o", str(again), "--data-dir", node0)
    assert json.loads((again / "history.json").read_text()) == json.loads(
        (out / "history.json").read_text())
    watched = run("watch", ident, "--data-dir", node0, timeout=60)
    assert watched.returncode == 0 and watched.stdout.count("\nround ") + 1 >= 3
    assert "round 3/3:" in watched.stdout and "done after 3 of 3 rounds" in watched.stdout

    # a second run into the same directory is refused in one line, and loses nothing
    refused = run("fl", "run", str(work / "job.toml"), "-o", str(out), "--data-dir", node0)
    assert refused.returncode != 0 and f"already holds run {ident[:15]}: add --resume" in \
        refused.stderr and refused.stderr.count("\n") == 1
    # --resume on a finished run finds nothing to do
    done = run("fl", "run", str(work / "job.toml"), "-o", str(out), "--resume", "--data-dir",
               node0, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "3 rounds; model and history in" in done.stderr
    # an unknown run: one line
    unknown = run("watch", "fl-0000", "--data-dir", node0)
    assert unknown.returncode != 0 and "no FL run fl-0000" in unknown.stderr

    # both replicas of a round's task agreed on the update's bytes
    ex = as_json("explain", history[-1]["job"][:12], "0", "--data-dir", node0)
    agreed = [r for r in ex["replicas"] if r["result"] and r["result"]["status"] == "OK"]
    assert len(agreed) >= 2 and len({r["result"]["output_sha256"] for r in agreed}) == 1

"""What a volunteer sees while a real job runs on a 4-daemon testnet: Prometheus counts the
task outcomes while the job runs, ``novacron tasks`` lists the node's work, ``node.log`` has
a line per task, and suspended nodes get no tasks."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.daemon.web.webdriver import free_port
from tests.e2e.cli import as_json, eventually, node_dir, ok, run

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def testnet(tmp_path_factory):
    tn = tmp_path_factory.mktemp("volunteer") / "tn"
    ok("testnet", "up", "-n", "4", "--dir", str(tn), "--seed", "18")
    port = free_port()
    with open(tn / "node3" / "node.toml", "a") as f:
        f.write(f"\n[metrics]\nport = {port}\n")
    ok("testnet", "restart", "node3", "--dir", str(tn))
    yield tn, port
    run("testnet", "down", "--dir", str(tn))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def counted(text: str, outcome: str) -> float:
    m = re.search(rf'^novacron_tasks_total\{{outcome="{outcome}"\}} ([0-9.e+]+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_task_outcomes_while_a_job_runs_and_tasks_lists_them(testnet, tmp_path):
    tn, port = testnet
    worker = node_dir(tn, 3)
    me = as_json("status", "--data-dir", worker)["node_id"]
    for i in range(3):  # only node3 takes tasks
        ok("suspend", "--data-dir", node_dir(tn, i))

    def others_offer_no_slots():
        recs = as_json("capabilities", "--data-dir", node_dir(tn, 0))["records"]
        return len(recs) == 4 and [r["node_id"] for r in recs if r["slots"] > 0] == [me]

    eventually(others_offer_no_slots, 60, "suspended nodes to offer no slots")
    assert counted(scrape(port), "OK") == 0
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp_path / "pi.wasm")
    spec = tmp_path / "job.toml"
    spec.write_text('[job]\nname = "metrics"\nmodule = "pi.wasm"\nargv = ["pi"]\n'
                    '[inputs]\nrange = [0, 30]\ntemplate = "{i} 2000000\\n"\n'
                    '[limits]\nfuel = 10_000_000_000\nwall_s = 60\n[replication]\nreplicas = 1\n')
    job = ok("submit", str(spec), "--data-dir", node_dir(tn, 0)).strip()

    def counted_while_running():
        text = scrape(port)
        state = as_json("status", job[:12], "--data-dir", node_dir(tn, 0))
        return counted(text, "OK") > 0 and state["counts"]["accepted"] < 30 and text

    text = eventually(counted_while_running, 120, "task outcomes counted while the job runs")
    assert "novacron_task_cpu_seconds_total" in text and "novacron_tasks_running" in text
    res = run("watch", job[:12], "--interval", "0.5", "--data-dir", node_dir(tn, 0), timeout=240)
    assert res.returncode == 0 and "job done: " in res.stdout
    assert counted(scrape(port), "OK") >= 30

    tasks = as_json("tasks", "--data-dir", worker, "--limit", "100")
    mine = [t for t in tasks["tasks"] if t["job"] == job]
    assert {t["task"] for t in mine if t["outcome"] == "OK"} == set(range(30))
    assert all(t["cpu_s"] > 0 and t["wall_s"] > 0 for t in mine)
    listing = ok("tasks", "--data-dir", worker)
    assert f"{job[:12]}/" in listing and " OK " in listing
    log = (tn / "node3" / "node.log").read_text()
    assert len(re.findall(rf"novacron\.tasks: task {job[:12]}/\d+ replica \d+: OK in ", log)) >= 30
    for i in range(3):  # the suspended nodes ran nothing of it
        assert not [t for t in as_json("tasks", "--data-dir", node_dir(tn, i))["tasks"]
                    if t["job"] == job]
        ok("resume", "--data-dir", node_dir(tn, i))

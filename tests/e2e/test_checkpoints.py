"""Issue 17 end to end, on a real local testnet driven through the CLI: a resumable task's
worker is killed with -9 mid-run and the task continues on another volunteer from its last
agreed checkpoint, its certified output equal to an uninterrupted run's; a volunteer whose
state is tampered with mid-run is caught at its next checkpoint.

How long the task runs is ``NOVACRON_E2E_LIFE_GENERATIONS`` (default 12,000 generations of a
256x256 board: ~6 s of compiled wasm, 24 checkpoints), the shortest that leaves time to kill a
worker after a few agreed checkpoints and still have most of the run left.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.cli import as_json, eventually, failed_tasks_explained, node_dir, ok, run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
GENERATIONS = int(os.environ.get("NOVACRON_E2E_LIFE_GENERATIONS", "12000"))
FUEL_PER_GENERATION = 5_400_000  # a 256x256 board, measured with the local runner


@pytest.fixture(scope="module")
def testnet(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt") / "tn"
    ok("testnet", "up", "-n", "6", "--cheaters", "1", "--dir", str(d), "--seed", "17")
    yield d
    run("testnet", "down", "--dir", str(d))


def life_job(tmp: Path, name: str, seeds: list[int], replicas: int = 2,
             generations: int = GENERATIONS) -> Path:
    shutil.copy(ROOT / "examples" / "life" / "life.wasm", tmp / "life.wasm")
    spec = tmp / f"{name}.toml"
    inputs = ", ".join(f'"{s} 256 {generations}\\n"' for s in seeds)
    spec.write_text(f'''[job]
name = "{name}"
module = "life.wasm"
[inputs]
list = [{inputs}]
[limits]
fuel = {generations * FUEL_PER_GENERATION * 2}
memory_mb = 16
wall_s = 300
max_output_bytes = 65536
[checkpoint]
every_fuel = {generations * FUEL_PER_GENERATION // 24}
[replication]
replicas = {replicas}
quorum = 2
max_replicas = 6
''')
    return spec


def uninterrupted(seed: int, generations: int = GENERATIONS) -> bytes:
    from daemon.runtime import Limits, Sandbox, module_hash

    module = (ROOT / "examples" / "life" / "life.wasm").read_bytes()
    out = Sandbox().run(module_hash(module), module, f"{seed} 256 {generations}\n".encode(),
                        Limits(fuel=generations * FUEL_PER_GENERATION * 2, wall_s=300,
                               max_output=65536))
    return out.output


def roles(testnet: Path) -> list[dict]:
    return json.loads((testnet / "testnet.json").read_text())["nodes"]


def test_a_tampered_replica_is_caught_at_its_next_checkpoint(testnet, tmp_path):
    nodes = roles(testnet)
    cheater = next(n["node_id"] for n in nodes if n["role"] == "cheater")
    seeds = [11, 12]
    generations = max(100, GENERATIONS // 6)  # a few checkpoints are all this needs
    # a replica on every node, quorum two: the cheater surely runs each task, and the honest
    # replicas agree on each checkpoint as it comes, so its first forged one is caught at once
    # (with two replicas, the split would wait for a third)
    job = ok("submit", str(life_job(tmp_path, "life-tamper", seeds, replicas=len(nodes),
                                    generations=generations)),
             "--data-dir", node_dir(testnet, 0)).strip()
    res = run("watch", job[:12], "--interval", "0.5", "--data-dir", node_dir(testnet, 0),
              timeout=400)
    assert res.returncode == 0 and f"job done: {len(seeds)} ok" in res.stdout, res.stdout[-400:]
    caught = []
    for task in range(len(seeds)):
        ex = as_json("explain", job[:12], str(task), "--data-dir", node_dir(testnet, 0))
        for r in ex["replicas"]:
            if r["worker"] == cheater:
                assert r["outcome"] != "agreed"
                if r["outcome"] == "disagreed" and "checkpoint" in r["detail"]:
                    caught.append(r["detail"])
    assert caught, "the cheater was never caught at a checkpoint"
    assert all("checkpoint 2 differs" in d for d in caught)  # its first forged checkpoint
    out = tmp_path / "tamper"
    ok("result", job[:12], "-o", str(out), "--data-dir", node_dir(testnet, 0))
    assert (out / "tasks" / "0.out").read_bytes() == uninterrupted(seeds[0], generations)


def test_a_killed_worker_s_task_resumes_elsewhere_from_its_agreed_checkpoint(testnet, tmp_path):
    nodes = roles(testnet)
    com = as_json("committees", "--data-dir", node_dir(testnet, 0))
    shard0 = next(c for c in com["committees"] if c["shard"] == "shard0")["members"]
    submitter = next(i for i, n in enumerate(nodes) if n["node_id"] in shard0)
    job = ok("submit", str(life_job(tmp_path, "life-kill", [5])),
             "--data-dir", node_dir(testnet, submitter)).strip()

    def running_with_checkpoints():
        ex = as_json("explain", job[:12], "0", "--data-dir", node_dir(testnet, submitter))
        st = as_json("status", job[:12], "--data-dir", node_dir(testnet, submitter))
        if not st["counts"].get("checkpointed"):
            return None
        # an honest worker other than the submitter (whose node holds the snapshots): with
        # the cheater on the task's other replica there may be none yet
        return [i for i, n in enumerate(nodes) if i != submitter and n["role"] == "honest"
                and any(r["worker"] == n["node_id"] and r["outcome"] == "pending"
                        for r in ex["replicas"])]
    victims = eventually(running_with_checkpoints, timeout=180,
                         what="an agreed checkpoint of the task on an honest non-submitter")
    victim = victims[0]
    ok("testnet", "kill", str(victim), "--dir", str(testnet))
    res = run("watch", job[:12], "--interval", "0.5", "--data-dir", node_dir(testnet, submitter),
              timeout=400)
    if not (res.returncode == 0 and "job done: 1 ok, 0 failed" in res.stdout):
        pytest.fail(f"{res.stdout[-400:]}\nvictim node{victim}; the failed task:\n"
                    + failed_tasks_explained(job[:12], node_dir(testnet, submitter)))
    out = tmp_path / "kill"
    ok("result", job[:12], "-o", str(out), "--data-dir", node_dir(testnet, submitter))
    assert (out / "tasks" / "0.out").read_bytes() == uninterrupted(5)
    assert ok("verify", str(out), "--genesis", str(testnet / "genesis.toml")).strip().endswith(
        "1 of 1 results verified")
    resumed = sum(as_json("status", "--data-dir", node_dir(testnet, i))["services"]["jobs"]
                  ["worker"].get("resumed", 0) for i in range(len(nodes)) if i != victim)
    assert resumed >= 1  # some volunteer continued it from a checkpoint, not from zero

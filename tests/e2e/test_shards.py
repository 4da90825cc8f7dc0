"""More than one shard, end to end through the CLI (issue 13): on real testnets with 2 and 4
shard committees, kv keys and jobs spread over every shard, nodes sit in several committees,
every shard's ledger clock moves, a kill -9 of a member in each shard leaves every shard
committing and running jobs, and an epoch change keeps the state and the jobs going.

A job lives in one shard's ledger (shard = job id mod shards); a large job is split across the
shards, one part per shard (``[placement] shards``): on 2 shards, a job split in 2 runs to the
end, its results come back in the job's own task order and every certificate verifies, and
``status``, ``explain``, ``describe``, ``logs``, ``cancel`` and the Python client see one job.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.cli import as_json, eventually, node_dir, ok, run

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def shard_committees(testnet: Path) -> dict[int, list[str]]:
    com = as_json("committees", "--data-dir", node_dir(testnet, 0))
    return {int(c["shard"][5:]): c["members"] for c in com["committees"]
            if c["shard"].startswith("shard")}


def all_committees(testnet: Path) -> list[list[str]]:
    return [c["members"] for c in as_json("committees", "--data-dir", node_dir(testnet, 0))["committees"]]


def victims_one_per_shard(testnet: Path, n: int) -> list[int]:
    """The fewest nodes (never node0, which drives the test) whose loss takes at least one
    member from every shard committee and at most f from any committee (the directory's too)."""
    ids = {as_json("status", "--data-dir", node_dir(testnet, i))["node_id"]: i for i in range(n)}
    shards = shard_committees(testnet)
    every = all_committees(testnet)
    for size in range(1, n):
        for chosen in itertools.combinations(range(1, n), size):
            gone = {nid for nid, i in ids.items() if i in chosen}
            if all(gone & set(m) for m in shards.values()) and all(
                    len(gone & set(m)) <= (len(m) - 1) // 3 for m in every):
                return list(chosen)
    raise AssertionError(f"no set of nodes hits every shard and at most f of each: {every}")


def pi_spec(tmp: Path, name: str) -> Path:
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp / "pi.wasm")
    spec = tmp / f"{name}.toml"
    spec.write_text(f'[job]\nname = "{name}"\nmodule = "pi.wasm"\nargv = ["pi"]\n[inputs]\n'
                    f'range = [0, 3]\ntemplate = "{{i}} 2000\\n"\n[limits]\nwall_s = 20\n')
    return spec


def jobs_on_every_shard(testnet: Path, tmp: Path, shards: int, tag: str) -> dict[int, str]:
    """Submit small jobs until each shard has one (a job's shard follows from its random id),
    then watch them all to the end. Returns shard -> job."""
    spec = pi_spec(tmp, tag)
    placed: dict[int, str] = {}
    for _ in range(12 * shards):
        res = as_json("submit", str(spec), "--data-dir", node_dir(testnet, 0))
        placed.setdefault(res["shard"], res["job"])
        if len(placed) == shards:
            break
    assert sorted(placed) == list(range(shards)), placed
    for shard, job in placed.items():
        res = run("watch", job[:12], "--interval", "0.5", "--data-dir", node_dir(testnet, 0),
                  timeout=240)
        assert res.returncode == 0 and "job done: 3 ok, 0 failed" in res.stdout, \
            (shard, res.stdout[-400:], res.stderr)
        st = as_json("status", job[:12], "--data-dir", node_dir(testnet, 0))
        # Every shard's ledger clock moves (one last-tick time for all shards froze shard 1's).
        assert abs(st["now_ms"] - time.time() * 1000) < 30_000, (shard, st["now_ms"])
    return placed


def kv_on_every_shard(testnet: Path, shards: int, prefix: str, writer: int = 0) -> dict[int, str]:
    """Put keys until each shard holds one; returns shard -> key."""
    keys: dict[int, str] = {}
    for k in range(16 * shards):
        key = f"{prefix}-{k}"
        res = as_json("kv", "put", key, f"v-{key}", "--data-dir", node_dir(testnet, writer))
        keys.setdefault(res["shard"], key)
        if len(keys) == shards:
            return keys
    raise AssertionError(f"keys reached only shards {sorted(keys)}")


def check_sharded_network(shards: int, nodes: int, d: Path, tmp: Path, epoch_change: bool) -> None:
    ok("testnet", "up", "-n", str(nodes), "--param", f"shards={shards}", "--dir", str(d),
       "--seed", "21")
    try:
        committees = shard_committees(d)
        assert sorted(committees) == list(range(shards))
        seats: dict[str, int] = {}
        for members in all_committees(d):
            for m in members:
                seats[m] = seats.get(m, 0) + 1
        assert max(seats.values()) >= 3  # a node seated in several committees at once

        before = kv_on_every_shard(d, shards, "e0", writer=1)
        jobs_on_every_shard(d, tmp, shards, "before")
        if not epoch_change:  # (once is enough: the 2-shard test)
            a_job_split_across_the_shards_is_one_job_to_its_user(d, tmp, shards)
        else:
            a_job_split_over_every_shard_runs_to_the_end(d, tmp, shards)

        victims = victims_one_per_shard(d, nodes)
        for v in victims:
            ok("testnet", "kill", str(v), "--dir", str(d))
        kv_on_every_shard(d, shards, "down")
        jobs_on_every_shard(d, tmp, shards, "during")
        for v in victims:
            ok("testnet", "restart", str(v), "--dir", str(d))
        if not epoch_change:
            return

        out = ok("testnet", "add", "--dir", str(d))
        assert out.startswith(f"started node{nodes}")

        def everyone_in_epoch_1():
            return all(as_json("committees", "--data-dir", node_dir(d, i))["epoch"] >= 1
                       for i in range(nodes + 1))
        eventually(everyone_in_epoch_1, timeout=120, what="every node to enter epoch 1")
        for shard, key in before.items():  # committed state crossed the epoch, shard by shard
            assert ok("kv", "get", key, "--data-dir", node_dir(d, nodes)).strip() == f"v-{key}"
        kv_on_every_shard(d, shards, "e1", writer=nodes)
        jobs_on_every_shard(d, tmp, shards, "after")
        for i in range(nodes + 1):
            health = json.loads(run("status", "--json", "--data-dir", node_dir(d, i)).stdout)
            assert health["health"] == "ok", (i, health["health"])
    finally:
        run("testnet", "down", "--dir", str(d))


def a_job_split_across_the_shards_is_one_job_to_its_user(d: Path, tmp: Path, shards: int) -> None:
    """Through the CLI as a user would: a 6-task pi job with ``[placement] shards = 2``."""
    from novacron import Client

    node = node_dir(d, 0)
    spec = pi_spec(tmp, "split")
    spec.write_text(spec.read_text().replace("range = [0, 3]", "range = [0, 6]")
                    + "[placement]\nshards = 2\n")
    res = run("submit", str(spec), "--data-dir", node)
    assert res.returncode == 0 and "6 tasks split across 2 shards" in res.stderr, res.stderr
    assert "split in 2 parts: tasks 0-2 on shard " in res.stderr, res.stderr
    job = res.stdout.strip()
    watched = run("watch", job[:12], "--interval", "0.5", "--data-dir", node, timeout=240)
    assert watched.returncode == 0 and "job done: 6 ok, 0 failed" in watched.stdout, \
        (watched.stdout[-600:], watched.stderr)
    assert "tasks 0-2 on shard" in watched.stdout and "(done)" in watched.stdout

    st = as_json("status", job[:12], "--tasks", "--data-dir", node)
    assert st["job"] == job and st["state"] == "done" and st["counts"]["ok"] == 6
    assert sorted(p["shard"] for p in st["parts"]) == list(range(shards))
    assert [(p["first"], p["tasks"], p["state"]) for p in st["parts"]] == [(0, 3, "done"), (3, 3, "done")]
    assert [t["task"] for t in st["tasks"]] == list(range(6))
    assert st["quorum"] == 2 and st["counts"]["agreed"] == {"2": 6}  # quorum as asked, in each part
    listed = as_json("jobs", "--data-dir", node)["jobs"]
    assert [j["job"] for j in listed].count(job) == 1
    assert not {p["job"] for p in st["parts"]} & {j["job"] for j in listed}  # parts under it

    ex = as_json("explain", job[:12], "4", "--data-dir", node)
    assert ex["task"] == 4 and ex["part"]["task"] == 1 and ex["part"]["job"] == st["parts"][1]["job"]
    assert "in part 2 of 2" in ok("explain", job[:12], "4", "--data-dir", node)
    assert "split in 2 parts" in ok("describe", job[:12], "--data-dir", node)
    logs = run("logs", job[:12], "5", "--data-dir", node)
    assert logs.returncode == 0 and "its stderr is empty" in logs.stderr, logs.stderr

    out = tmp / "split-out"
    written = ok("result", job[:12], "-o", str(out), "--data-dir", node)
    assert "wrote 6 of 6 task outputs" in written, written
    for i in range(6):  # in the job's own order: each output is its input's
        alone = run("try", str(spec), "--task", str(i))
        assert alone.returncode == 0, alone.stderr
        assert (out / "tasks" / f"{i}.out").read_text() == alone.stdout, i
    info = json.loads((out / "job.json").read_text())
    assert info["job"] == job and [p["job"] for p in info["parts"]] == [p["job"] for p in st["parts"]]
    verified = run("verify", str(out), "--genesis", str(d / "genesis.toml"), "--min-agree", "2")
    assert verified.returncode == 0 and "6 of 6 results verified" in verified.stdout, verified.stdout
    assert "the job's id is the hash of these parts" in verified.stdout
    assert "task 5: OK" in verified.stdout and ", part 2 task 2)" in verified.stdout

    # The submitting daemon restarts: it still knows the job's parts and gathers its results.
    ok("testnet", "restart", "0", "--dir", str(d))
    again = eventually(lambda: as_json("status", job[:12], "--data-dir", node), timeout=60,
                       what="the restarted submitter to answer for the split job")
    assert [(p["job"], p["state"]) for p in again["parts"]] == \
        [(p["job"], p["state"]) for p in st["parts"]] and again["certified"] == 6

    with Client(node, genesis=d / "genesis.toml") as client:  # the Python client sees the same whole job
        results = client.result(job)
        assert [r.task for r in results] == list(range(6))
        assert [r.output for r in results] == [(out / "tasks" / f"{i}.out").read_bytes()
                                                for i in range(6)]
        assert client.status(job)["parts"] == as_json("status", job[:12], "--data-dir", node)["parts"]

    # The parts must make up the job: a result directory whose parts were reordered (task 0
    # would read part 2's output) does not verify.
    info["parts"][0]["first"], info["parts"][1]["first"] = 3, 0
    (out / "job.json").write_text(json.dumps(info))
    altered = run("verify", str(out))
    assert altered.returncode == 2 and "is not the hash of the parts it lists" in altered.stderr

    # A large job is split by itself (auto), and cancelling it cancels every part.
    import wasmtime

    empty = wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "_start")))')
    (tmp / "empty.wasm").write_bytes(bytes(empty))
    (tmp / "big.toml").write_text('[job]\nname = "big"\nmodule = "empty.wasm"\n[inputs]\n'
                                  'range = [0, 10000]\ntemplate = "{i}"\n')
    big = as_json("submit", str(tmp / "big.toml"), "--data-dir", node)
    assert len(big["parts"]) == shards and sum(p["tasks"] for p in big["parts"]) == 10_000
    cancelled = run("cancel", big["job"][:12], "--data-dir", node)
    assert cancelled.returncode == 0 and "is cancelled" in cancelled.stdout, cancelled.stdout
    assert cancelled.stdout.count(": cancelled") == shards, cancelled.stdout
    assert as_json("status", big["job"][:12], "--data-dir", node)["state"] == "cancelled"


def a_job_split_over_every_shard_runs_to_the_end(d: Path, tmp: Path, shards: int) -> None:
    spec = pi_spec(tmp, "spread")
    spec.write_text(spec.read_text().replace("range = [0, 3]", f"range = [0, {2 * shards}]")
                    + f"[placement]\nshards = {shards}\n")
    res = as_json("submit", str(spec), "--data-dir", node_dir(d, 0))
    assert sorted(p["shard"] for p in res["parts"]) == list(range(shards))
    watched = run("watch", res["job"][:12], "--interval", "0.5", "--data-dir", node_dir(d, 0),
                  timeout=240)
    assert watched.returncode == 0 and f"job done: {2 * shards} ok, 0 failed" in watched.stdout, \
        (watched.stdout[-600:], watched.stderr)


def test_two_shards_through_a_kill9_in_each(tmp_path):
    check_sharded_network(2, 5, tmp_path / "tn", tmp_path, epoch_change=False)


def test_four_shards_through_a_kill9_in_each_and_an_epoch_change(tmp_path):
    check_sharded_network(4, 6, tmp_path / "tn", tmp_path, epoch_change=True)

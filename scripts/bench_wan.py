#!/usr/bin/env python3
"""Benchmark real daemons on a namespace testnet that looks like the internet; prints JSON.

    sudo .venv/bin/python scripts/bench_wan.py [--nodes 30] [--profile planet] [--tasks 100]

Every node is given only the seed's address (node0). Figures (issue 14):
- ``new_node_known_by_all_s``: ``testnet add`` starts a node that is not in the genesis, given
  the seed only; the time until every other node's registry holds its capability record.
- ``capability_change_ms``: a node publishes a new generation of its record; the time until
  every other node holds it, p50 / p99.
- ``pbft_commit``: ``kv.put`` from a member of shard 0, timed in the daemon from submission to
  the result (its own replica's, once it commits), p50 / p99, also as a multiple of the
  committee's median round trip (the profile's round trips between the members; target p50
  <= 3). Twice: ``from_primary``, the client the primary of the view the puts start in (its
  request needs no hop to the primary), and ``from_backup``, a member that is not (one more
  one-way delay: the case of most members). ``network_floor_ms``: what the profile's delays
  alone allow for that client and the primary of each view the puts saw
  (``testnet.wan.floor``); the rest of a put's time is CPU and queues (30 daemons share this
  machine's cores): ``cpu_s_per_put`` (the committee's members, the other daemons, the delay
  relay) and ``cores_busy`` while the puts ran say how much.
- ``job``: a pi job of ``--tasks`` tasks (2 replicas each), run ``--job-runs`` times one after
  another: tasks/s from submission until the submitter's node holds the last certificate, and
  the mean time from submission until a task's certificate is there (both read locally, once a
  second); the medians of the runs, and each run in ``runs`` (one run's figure swung from 0.47
  to 0.94 of ``lan``'s between two benches of the same code: 30 daemons on two cores).
- ``view_changes_during`` (with ``pbft_commit`` and ``job``): view changes any replica made
  while that figure was measured; one in the middle of the puts or the job is in its figure.
  ``sent_mib_during``: what all daemons sent meanwhile, by protocol (a job's own, summed over
  its runs); ``softstate_during``: the soft state's states sent (full, elided, resent),
  intervals sent again, gaps and duplicates seen, summed over the nodes.
- per node: most connections seen, idle bytes/s on its network interface (both ways, headers
  included) over ``--idle-seconds``, memory (RSS); ``idle_cores``: the CPU the daemons (the
  median one, and all together) and the relay used over that idle interval.
- ``formation``: seconds from starting the daemons until every node holds every record and no
  committee is stalled, and what forming cost up to then: bytes the daemons sent per protocol,
  frames dropped (and why), dials, view changes (``--formation-only``: stop there, no ``lan``
  run).
Baseline in the same run: the same job on a ``lan`` testnet of as many nodes (target: the
profile's throughput at least half of it). Needs root (network namespaces).

``machine_vote_us``: this machine's speed when the run began, before any daemon started: the
CPU a vote-sized message costs in pure code (pack, sign, verify, unpack; best of five). This
machine's speed moves by tens of percent between hours (the same code's put CPU 0.64 and
1.09 s on two days), so two runs' figures compare only next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from daemon.control.client import ControlClient, ControlError  # noqa: E402
from testnet.cpu import process_cpu_s  # noqa: E402
from testnet.interrupt import stop_cleanly_on_signals  # noqa: E402
from testnet.local import launcher  # noqa: E402
from testnet.local.readiness import network_formed  # noqa: E402
from testnet.wan.floor import commit_floor_ms  # noqa: E402
from testnet.wan.launcher import Wan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(xs: list[float], digits: int = 1) -> dict[str, float]:
    return {"p50": round(pct(xs, 50), digits), "p99": round(pct(xs, 99), digits),
            "max": round(max(xs), digits), "n": len(xs)}


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_used(pids: dict[str, int], fn: Any) -> tuple[Any, dict[str, float]]:
    """``fn()``, and the CPU seconds each process used meanwhile."""
    before = {k: process_cpu_s(p, gone=0.0) for k, p in pids.items()}
    out = fn()
    return out, {k: process_cpu_s(p, gone=0.0) - before[k] for k, p in pids.items()}


def iface_bytes(ns: str) -> int:
    """Bytes received + sent on a node's eth0 (its whole network traffic, headers included)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/statistics/rx_bytes",
                          "/sys/class/net/eth0/statistics/tx_bytes"],
                         capture_output=True, text=True, check=True).stdout.split()
    return int(out[0]) + int(out[1])


def call(c: ControlClient, method: str, params: dict[str, Any] | None = None) -> Any:
    """A control call that asks again when a busy daemon does not answer in time."""
    for attempt in range(5):
        try:
            return c.call(method, params)
        except ControlError as err:
            if attempt == 4:
                raise
            print(f"bench_wan: {method} not answered ({err}); asking again", file=sys.stderr)


def settle(clients: list[ControlClient], n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while any(len(call(c, "capabilities")["records"]) < n for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError(f"capability registries did not reach {n} records")
        time.sleep(0.2)


def known_by_all(clients: list[ControlClient], node_id: str, generation: int = 0,
                 timeout: float = 300) -> float:
    """Seconds until every client's registry holds ``node_id``'s record (of ``generation``)."""
    t0 = time.monotonic()
    waiting = set(range(len(clients)))
    while waiting:
        for i in list(waiting):
            recs = call(clients[i], "capabilities", {"node": node_id})["records"]
            if recs and recs[0]["generation"] >= generation:
                waiting.discard(i)
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"a record did not reach every node in {timeout:.0f} s")
        time.sleep(0.02)
    return time.monotonic() - t0


def capability_changes(clients: list[ControlClient], samples: int) -> list[float]:
    out = []
    for k in range(samples):
        origin = (k * 7) % len(clients)
        me = call(clients[origin], "ping")["node_id"]
        gen = call(clients[origin], "capabilities.refresh")["generation"]
        others = clients[:origin] + clients[origin + 1:]
        out.append(known_by_all(others, me, gen, timeout=120) * 1000)
    return out


def connections_watch(sockets: list[Path], stop: threading.Event, most: list[int]) -> None:
    """Poll each node's connection count (on connections of its own: a client is one
    request at a time) until ``stop``; keep each node's largest."""
    clients: dict[Path, ControlClient] = {}
    while not stop.is_set():
        for i, path in enumerate(list(sockets)):
            c = clients.setdefault(path, ControlClient(path, timeout=30))
            try:
                n = c.call("status")["services"]["p2p"]["connected"]
            except ControlError:
                clients.pop(path).close()
                continue
            while len(most) <= i:
                most.append(0)
            most[i] = max(most[i], n)
        stop.wait(2.0)
    for c in clients.values():
        c.close()


def run_jobs(clients: list[ControlClient], tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``args.job_runs`` jobs one after another from node0; the medians, and each run."""
    runs = [during(clients, lambda: run_job(clients[0], tmp, args.tasks, args.task_samples, k))
            for k in range(args.job_runs)]
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs)
                           for k in ("makespan_s", "tasks_per_s", "mean_task_latency_s")}
    out["view_changes_during"] = sum(r["view_changes_during"] for r in runs)
    out["sent_mib_during"] = {p: round(sum(r["sent_mib_during"].get(p, 0) for r in runs), 2)
                              for p in sorted({p for r in runs for p in r["sent_mib_during"]})}
    out["runs"] = runs
    return out


def run_job(client: ControlClient, tmp: Path, tasks: int, samples: int, run: int) -> dict[str, Any]:
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp / "pi.wasm")
    spec = tmp / f"job{run}.toml"
    spec.write_text(f'[job]\nname = "bench-wan-{run}"\nmodule = "pi.wasm"\n[inputs]\n'
                    f'range = [0, {tasks}]\ntemplate = "{{i}} {samples}\\n"\n'
                    f'[limits]\nfuel = 100_000_000_000\nwall_s = 120\n'
                    f'[replication]\nreplicas = 2\n')
    t0 = time.monotonic()
    job = call(client, "jobs.submit", {"spec": str(spec)})["job"]
    # Certificates held by the submitter's node, polled locally (``jobs.list``): what the user
    # has, with no committee in the way. The ledger's view (``jobs.status``) is an ordered read
    # for a submitter off the committee: a busy committee left it unanswered for 30 s at a
    # time, and the job's end was seen up to that late. It is asked once no certificate came
    # for ``STALL_S`` (a job with failed tasks ends without every certificate), and at the end.
    certified_at: list[float] = []
    unanswered = 0
    last_news = 0.0
    while True:
        now = time.monotonic() - t0
        row = next(r for r in call(client, "jobs.list")["jobs"] if r["job"] == job)
        if row["certified"] > len(certified_at):
            last_news = now
        certified_at += [now] * max(0, min(row["certified"], tasks) - len(certified_at))
        if len(certified_at) >= tasks:
            break
        if now > 1800:
            raise RuntimeError(f"job not done in 30 min: {row['certified']} of {tasks} certified")
        if now - last_news >= STALL_S:
            last_news = now
            st = ledger_status(client, job)
            if st is None:
                unanswered += 1
            elif st["state"] != "open" and st["certified"] >= st["counts"]["accepted"]:
                break
        time.sleep(1.0)  # a local read: it loads nothing that is measured
    makespan = time.monotonic() - t0
    while (st := ledger_status(client, job)) is None or st["state"] == "open":
        unanswered += st is None
        if time.monotonic() - t0 > 1800:
            raise RuntimeError("the ledger did not say the job ended in 30 min")
        time.sleep(2.0)
    if st["counts"]["ok"] != tasks:
        raise RuntimeError(f"job ended {st['state']} with {st['counts']}")
    return {"makespan_s": round(makespan, 1), "tasks_per_s": round(tasks / makespan, 3),
            "mean_task_latency_s": round(statistics.mean(certified_at), 1) if certified_at else None,
            "status_reads_unanswered": unanswered}


STALL_S = 60.0
"""No new certificate for this long: ask the ledger whether the job ended anyway."""


def ledger_status(client: ControlClient, job: str) -> dict[str, Any] | None:
    """``jobs.status`` (the ledger's view), or None if the committee did not answer in time."""
    try:
        return client.call("jobs.status", {"job": job})  # type: ignore[no-any-return]
    except ControlError as err:
        print(f"bench_wan: jobs.status not answered ({err}); asking again", file=sys.stderr)
        return None


def shard0_members(clients: list[ControlClient]) -> list[int]:
    """Shard 0's members as indexes into ``clients``, in committee order (view v's primary is
    the (v mod n)-th)."""
    com = call(clients[0], "committees")
    members = next(c for c in com["committees"] if c["shard"] == "shard0")["members"]
    ids = [call(c, "ping")["node_id"] for c in clients]
    return [ids.index(m) for m in members if m in ids]


def measure(out: dict[str, Any], name: str, fn: Any) -> None:
    """One figure; a failure is recorded in its place (the other figures still count)."""
    try:
        out[name] = fn()
    except (RuntimeError, ControlError, OSError) as err:
        out[name] = {"error": str(err)}
        print(f"bench_wan: {name} failed: {err}", file=sys.stderr)


def during(clients: list[ControlClient], fn: Any) -> Any:
    """``fn()``, its result (a dict) noting the view changes made meanwhile (a view change in
    the middle of a measurement is what its figure shows, and the reader should know) and
    what the daemons sent meanwhile: ``sent_mib_during`` by protocol, and the soft state's
    resends (``softstate_during``): on sub-Mbit uplinks these decide a job's speed."""
    before = counters(clients)
    out = fn()
    after = counters(clients)
    out["view_changes_during"] = after["view_changes"] - before["view_changes"]
    out["sent_mib_during"] = {p: round(n / 2**20, 2)
                              for p, n in sorted((after["sent"] - before["sent"]).items())}
    out["softstate_during"] = {k: round(after["soft"][k] - before["soft"][k], 1)
                               for k in sorted(after["soft"])}
    return out


SOFT_COUNTERS = ("deltas_applied", "deltas_redundant", "intervals_resent", "gaps", "duplicates")


def counters(clients: list[ControlClient]) -> dict[str, Any]:
    """The daemons' own counters, summed over the nodes (one ``p2p.metrics`` and one
    ``status`` read each): bytes sent by protocol, drops, dials, the soft state's resends, and
    the most view changes any node's replica has seen (its committees this epoch)."""
    sent: Counter[str] = Counter()
    drops: Counter[str] = Counter()
    dials: Counter[str] = Counter()
    soft: Counter[str] = Counter()
    views = 0
    for c in clients:
        m = call(c, "p2p.metrics")
        sent.update(m["bytes_out"])
        drops.update(m["drops"])
        dials.update({k: m["dials"].get(k, 0) for k in ("attempts", "failures")})
        services = call(c, "status")["services"]
        crdt = services["softstate"]["crdt"]
        soft.update({k: crdt.get(k, 0) for k in SOFT_COUNTERS})
        soft.update({f"states_{kind}": n for kind, n in crdt.get("states_sent", {}).items()})
        for obj, w in crdt.get("written", {}).items():
            soft.update({f"written_{obj}": w["count"], f"written_kib_{obj}": w["bytes"] / 1024})
        views = max([views] + [r["view_changes"] for r in services["consensus"]["replicas"]])
    return {"sent": sent, "drops": drops, "dials": dials, "soft": soft, "view_changes": views}


def shard0_view(client: ControlClient) -> int:
    return next(r["view"] for r in call(client, "status")["services"]["consensus"]["replicas"]
                if r["shard"] == 0)


def commit_both(clients: list[ControlClient], wan: Wan, puts: int,
                pids: dict[str, int]) -> dict[str, Any]:
    """The puts from the current primary of shard 0, then from the member after it."""
    members = shard0_members(clients)
    primary = shard0_view(clients[members[0]]) % len(members)
    backup = members[(primary + 1) % len(members)]
    return {"from_primary": during(clients, lambda: commit_figures(
                clients, wan, puts, pids, members, members[primary])),
            "from_backup": during(clients, lambda: commit_figures(
                clients, wan, puts, pids, members, backup))}


def commit_figures(clients: list[ControlClient], wan: Wan, puts: int, pids: dict[str, int],
                   members: list[int], member: int) -> dict[str, Any]:
    first = shard0_view(clients[member])
    t0 = time.monotonic()
    lat, cpu = cpu_used(pids, lambda: [
        call(clients[member], "kv.put", {"key": f"w{member}-{i}", "value": "x"})["latency_ms"]
        for i in range(puts)])
    wall = time.monotonic() - t0
    views = range(first, shard0_view(clients[member]) + 1)
    access = wan.relay.access_ms
    median_rtt = statistics.median(2 * (access[a] + access[b])
                                   for a in members for b in members if a < b)
    primaries = [members[v % len(members)] for v in views]
    floor = {f"node{p}": round(commit_floor_ms(access, members, p, member), 1)
             for p in primaries}
    return {"committee_size": len(members), "committee_median_rtt_ms": round(median_rtt, 1),
            "client": f"node{member}", "network_floor_ms": floor,
            "cpu_s_per_put": cpu_per_put(cpu, members, puts),
            "cores_busy": round(sum(cpu.values()) / wall, 2),
            "latency_ms": summary(lat),
            "p50_rtt_multiple": round(pct(lat, 50) / median_rtt, 2),
            "p99_rtt_multiple": round(pct(lat, 99) / median_rtt, 2)}


def cpu_per_put(cpu: dict[str, float], members: list[int], puts: int) -> dict[str, float]:
    """CPU seconds per put: all the committee's members, everyone else, and the relay."""
    member_names = {f"node{i}" for i in members}
    parts = {"members": sum(v for k, v in cpu.items() if k in member_names),
             "others": sum(v for k, v in cpu.items() if k not in member_names and k != "relay"),
             "relay": cpu.get("relay", 0.0)}
    return {k: round(v / puts, 3) for k, v in parts.items()}


def formation_costs(clients: list[ControlClient]) -> dict[str, Any]:
    """What the network spent forming, summed over its nodes (the daemons' own counters)."""
    spent = counters(clients)
    return {"sent_mib": {p: round(n / 2**20, 2) for p, n in sorted(spent["sent"].items())},
            "drops": dict(spent["drops"]), "dials": dict(spent["dials"]),
            "most_view_changes": spent["view_changes"]}


def bench_profile(profile: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    d = tmp / profile
    t0 = time.monotonic()
    state = launcher.up(d, args.nodes, seed=args.seed, wait=args.wait, ready=network_formed,
                        wan=profile, nat_fraction=args.nat_fraction if profile != "lan" else 0.0,
                        log=lambda s: print(f"bench_wan: {s}", file=sys.stderr))
    out: dict[str, Any] = {"formation": {"seconds": round(time.monotonic() - t0, 1)}}
    try:
        clients = [ControlClient(n.socket, timeout=120) for n in state.nodes]
        out["formation"].update(formation_costs(clients))
        if args.formation_only:
            rss = [rss_mib(n.pid) for n in state.nodes if n.pid]  # type: ignore[arg-type]
            out["per_node_rss_mib"] = {"median": round(statistics.median(rss), 1),
                                       "max": round(max(rss), 1)}
            for c in clients:
                c.close()
            return out
        settle(clients, args.nodes)
        most: list[int] = []
        sockets = [n.socket for n in state.nodes]
        stop = threading.Event()
        watcher = threading.Thread(target=connections_watch, args=(sockets, stop, most))
        watcher.start()
        try:
            if profile != "lan":
                wan = Wan.load(d)
                assert wan is not None
                # Idle: nothing asked of the network but what the daemons do by themselves.
                pids = {n.name: n.pid for n in state.nodes if n.pid}
                if wan.relay_pid:
                    pids["relay"] = wan.relay_pid
                before = {n.name: iface_bytes(n.netns) for n in state.nodes}  # type: ignore[arg-type]
                _, idle_cpu = cpu_used(pids, lambda: time.sleep(args.idle_seconds))  # by design
                idle = [(iface_bytes(n.netns) - before[n.name]) / args.idle_seconds  # type: ignore[arg-type]
                        for n in state.nodes]
                node_cpu = [v / args.idle_seconds for k, v in idle_cpu.items() if k != "relay"]
                out["idle_cores"] = {"per_node_median": round(statistics.median(node_cpu), 3),
                                     "all_nodes": round(sum(node_cpu), 2),
                                     "relay": round(idle_cpu.get("relay", 0.0)
                                                    / args.idle_seconds, 2)}
                out["per_node_idle_bytes_per_s"] = {"median": round(statistics.median(idle)),
                                                    "max": round(max(idle))}
                measure(out, "capability_change_ms",
                        lambda: summary(capability_changes(clients, args.samples), 0))
                measure(out, "pbft_commit", lambda: commit_both(clients, wan, args.puts, pids))
            measure(out, "job", lambda: run_jobs(clients, d, args))
            if profile != "lan":
                # Last: a node joining starts a new epoch (committees hand over).
                def joined() -> float:
                    t_add = time.monotonic()
                    node = launcher.add(d, wait=args.wait)
                    sockets.append(node.socket)
                    return round(known_by_all(clients, node.node_id) + (time.monotonic() - t_add), 1)
                measure(out, "new_node_known_by_all_s", joined)
        finally:
            stop.set()
            watcher.join()
        out["per_node_most_connections"] = max(most)
        rss = [rss_mib(n.pid) for n in state.nodes if n.pid]  # type: ignore[arg-type]
        out["per_node_rss_mib"] = {"median": round(statistics.median(rss), 1),
                                   "max": round(max(rss), 1)}
        for c in clients:
            c.close()
    finally:
        launcher.down(d)
    return out


def machine_vote_us(rounds: int = 5, votes: int = 2000) -> float:
    """CPU microseconds a vote-sized message costs in pure code: pack, sign, verify, unpack
    (the best of ``rounds`` runs of ``votes``): the machine's speed, to read a run's figures by."""
    from nacl.signing import SigningKey

    from protocol.canonical import packb, unpackb

    key = SigningKey(bytes(range(32)))
    verify = key.verify_key
    vote = {"type": "commit", "shard": 0, "epoch": 3, "view": 1, "seq": 42,
            "digest": bytes(32), "sender": bytes(32)}
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for i in range(votes):
            vote["seq"] = i
            unpackb(verify.verify(key.sign(packb(vote))))
        best = min(best, time.process_time() - start)
    return round(best / votes * 1e6, 1)


def main() -> int:
    stop_cleanly_on_signals()  # a kill or Ctrl-C still takes the testnet down
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--profile", default="planet")
    ap.add_argument("--nat-fraction", type=float, default=0.0)
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--job-runs", type=int, default=3, help="jobs per profile (medians)")
    ap.add_argument("--task-samples", type=int, default=20_000, help="pi samples per task")
    ap.add_argument("--samples", type=int, default=20, help="capability changes to time")
    ap.add_argument("--puts", type=int, default=30)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--wait", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--formation-only", action="store_true",
                    help="only form the network and report what that took (no lan run)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_wan: needs root (network namespaces); run it as root", file=sys.stderr)
        return 2
    machine = machine_vote_us()
    tmp = Path(tempfile.mkdtemp(prefix="novacron-bench-wan-"))
    try:
        wan = bench_profile(args.profile, args, tmp)
        if args.formation_only:
            print(json.dumps({"nodes": args.nodes, "profile": args.profile,
                              "nat_fraction": args.nat_fraction, "seeds": 1,
                              "machine_vote_us": machine, args.profile: wan}))
            shutil.rmtree(tmp, ignore_errors=True)
            return 0
        lan = bench_profile("lan", args, tmp)
    except launcher.TestnetError as err:  # the logs stay for a look
        print(f"bench_wan: {err}", file=sys.stderr)
        return 1
    ratio = (wan["job"]["tasks_per_s"] / lan["job"]["tasks_per_s"]
             if "tasks_per_s" in wan["job"] and "tasks_per_s" in lan["job"] else float("nan"))
    commit = {k: wan["pbft_commit"].get(k, {}).get("p50_rtt_multiple", float("nan"))
              for k in ("from_primary", "from_backup")}
    result = {"nodes": args.nodes, "profile": args.profile, "nat_fraction": args.nat_fraction,
              "seeds": 1, "machine_vote_us": machine, args.profile: wan, "baseline_lan": lan,
              "job_throughput_vs_lan": round(ratio, 2)}
    result["targets"] = [
        *({"target": f"PBFT commit p50 <= 3 x committee median round trip ({k.replace('_', ' ')})",
           "value": v, "passed": v <= 3} for k, v in commit.items()),
        {"target": "job throughput >= half of lan", "value": round(ratio, 2),
         "passed": ratio >= 0.5},
    ]
    print(json.dumps(result).replace("NaN", "null"))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

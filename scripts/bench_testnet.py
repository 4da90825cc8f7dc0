#!/usr/bin/env python3
"""Benchmark a local testnet of real daemons on 127.0.0.1; prints one JSON object.

    .venv/bin/python scripts/bench_testnet.py [--nodes 10] [--samples 30] [--puts 200]

Figures (issue 7):
- capability propagation: a node publishes a new generation of its capability record
  (``capabilities.refresh``); the time until every other node's registry shows it, p50 / p99
  (target p99 < 1 s). Measured by polling each node's control socket on a kept-open connection.
- PBFT commit latency over real libp2p streams, for the 4-member shard committee: a ``kv.put``
  from a committee member and from a non-member, timed inside the daemon from submission to
  f+1 matching replies, p50 / p99 (target p50 <= 20 ms).
- committed requests/s with every node submitting ``kv.put`` concurrently.
- per-node memory (RSS) and idle CPU (share of one core over an idle interval), and idle
  traffic: bytes/s each node sent over the same interval, by protocol (``p2p.metrics``), for
  the shard committees' members apart from the rest (consensus traffic is the members' alone;
  an idle committee orders one clock tick per ``LEDGER_TICK_IDLE_S``, so take a window of
  minutes to see it: ``--idle-seconds 600``).
Baseline in the same run: the round trip of the control socket's ``ping`` (what every figure
above includes and the network does not cause).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from daemon.control.client import ControlClient  # noqa: E402
from testnet.cpu import process_cpu_s  # noqa: E402
from testnet.interrupt import stop_cleanly_on_signals  # noqa: E402
from testnet.local import launcher  # noqa: E402
from testnet.local.readiness import network_ready  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"p50": round(pct(xs, 50), 2), "p99": round(pct(xs, 99), 2),
            "max": round(max(xs), 2), "n": len(xs)}


def proc_stats(pid: int) -> tuple[int, float]:
    """(RSS in KiB, CPU seconds so far) of a process, from /proc."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, process_cpu_s(pid)


def capability_propagation(clients: list[ControlClient], samples: int) -> list[float]:
    out = []
    n = len(clients)
    for k in range(samples):
        origin = k % n
        me = clients[origin].call("ping")["node_id"]
        gen = clients[origin].call("capabilities.refresh")["generation"]
        t0 = time.monotonic()
        waiting = set(range(n)) - {origin}
        while waiting:
            for i in list(waiting):
                recs = clients[i].call("capabilities", {"node": me})["records"]
                if recs and recs[0]["generation"] >= gen:
                    waiting.discard(i)
            if time.monotonic() - t0 > 30:
                raise RuntimeError("a capability change did not reach every node in 30 s")
        out.append((time.monotonic() - t0) * 1000)
    return out


def commit_latency(client: ControlClient, puts: int, tag: str) -> list[float]:
    return [client.call("kv.put", {"key": f"{tag}-{i}", "value": "x"})["latency_ms"]
            for i in range(puts)]


def throughput(paths: list[Path], seconds: float) -> float:
    done = [0] * len(paths)
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        with ControlClient(paths[i], timeout=60) as c:
            k = 0
            while time.monotonic() < stop:
                c.call("kv.put", {"key": f"load-{i}-{k}", "value": "y"})
                k += 1
                done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(paths))]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0)


def idle_traffic(sent: list[Counter[str]], member: list[bool], seconds: float) -> dict[str, Any]:
    """Bytes/s each node sent while idle, for committee members and the rest: total (median,
    max) and the mean per node of each protocol."""
    out: dict[str, Any] = {"window_s": seconds}
    for name, keep in (("members", True), ("others", False)):
        group = [c for c, m in zip(sent, member) if m == keep]
        if not group:
            continue
        totals = [sum(c.values()) / seconds for c in group]
        by = sum(group, Counter())
        out[name] = {"nodes": len(group), "median": round(statistics.median(totals), 1),
                     "max": round(max(totals), 1),
                     "by_protocol": {k: round(v / seconds / len(group), 1)
                                     for k, v in by.most_common()}}
    return out


def main() -> int:
    stop_cleanly_on_signals()  # a kill or Ctrl-C still takes the testnet down
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--puts", type=int, default=200)
    ap.add_argument("--load-seconds", type=float, default=10.0)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="novacron-bench-"))
    # 10% assumed Byzantine: committees of 4 (f = 1) meet the failure target at 10 nodes.
    state = launcher.up(tmp / "testnet", args.nodes, seed=1, wait=120, ready=network_ready,
                        params={"byzantine_percent": 10})
    try:
        paths = [n.socket for n in state.nodes]
        clients = [ControlClient(p, timeout=60) for p in paths]
        # Wait until every registry holds every node's record (the network has settled).
        deadline = time.monotonic() + 60
        while any(len(c.call("capabilities")["records"]) < args.nodes for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("capability registries did not fill in 60 s")
            time.sleep(0.1)
        ping = [0.0] * 200
        for i in range(200):
            t0 = time.monotonic()
            clients[0].call("ping")
            ping[i] = (time.monotonic() - t0) * 1000
        prop = capability_propagation(clients, args.samples)
        com = clients[0].call("committees")
        shard0 = next(c for c in com["committees"] if c["shard"] == "shard0")["members"]
        ids = [c.call("ping")["node_id"] for c in clients]
        member = ids.index(shard0[1])
        outsider = next(i for i, nid in enumerate(ids) if nid not in shard0)
        from_member = commit_latency(clients[member], args.puts, "m")
        from_outsider = commit_latency(clients[outsider], args.puts, "o")
        rate = throughput(paths, args.load_seconds)
        members = {m for c in com["committees"] for m in c["members"]}
        before = {n.name: proc_stats(n.pid) for n in state.nodes}
        sent0 = [Counter(c.call("p2p.metrics")["bytes_out"]) for c in clients]
        time.sleep(args.idle_seconds)  # measuring idle CPU over a real interval, by design
        sent1 = [Counter(c.call("p2p.metrics")["bytes_out"]) for c in clients]
        after = {n.name: proc_stats(n.pid) for n in state.nodes}
        idle_bytes = idle_traffic([b - a for a, b in zip(sent0, sent1)],
                                  [nid in members for nid in ids], args.idle_seconds)
        rss = [after[k][0] / 1024 for k in after]
        idle = [(after[k][1] - before[k][1]) / args.idle_seconds * 100 for k in after]
        for c in clients:
            c.close()
        result = {
            "nodes": args.nodes,
            "baseline_control_ping_ms": summary(ping),
            "capability_propagation_ms": summary(prop),
            "pbft_commit_latency_ms": {"committee_size": len(shard0),
                                       "from_member": summary(from_member),
                                       "from_non_member": summary(from_outsider)},
            "committed_requests_per_s": round(rate, 1),
            "per_node_rss_mib": {"median": round(statistics.median(rss), 1), "max": round(max(rss), 1)},
            "per_node_idle_cpu_percent": {"median": round(statistics.median(idle), 2),
                                          "max": round(max(idle), 2)},
            "per_node_idle_bytes_per_s": idle_bytes,
        }
        p99 = result["capability_propagation_ms"]["p99"]
        p50 = result["pbft_commit_latency_ms"]["from_member"]["p50"]
        result["targets"] = [
            {"target": "capability propagation p99 < 1000 ms", "value": p99, "passed": p99 < 1000},
            {"target": "PBFT commit latency p50 <= 20 ms (4-member committee)", "value": p50,
             "passed": p50 <= 20},
        ]
        print(json.dumps(result))
    finally:
        launcher.down(tmp / "testnet")
    return 0


if __name__ == "__main__":
    sys.exit(main())

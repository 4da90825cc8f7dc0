#!/usr/bin/env python3
"""Time ``kv put``s on a running local testnet, from shard 0's primary and from a backup;
prints JSON.

    .venv/bin/python scripts/bench_puts.py --dir DIR [--puts 300]

Start the testnet first (``novacron testnet up -n 30 --dir DIR --seed 1``); the puts go one
after another through each client's control socket, as ``novacron kv put`` sends them.
Figures, for each client: ``latency_ms`` p50 / p90 (timed in the daemon, submission to its
own replica's result) and ``cpu_s_per_put``, the CPU all the testnet's daemons spent per put
(``/proc``), with ``cores_busy`` while the puts ran. On a loopback testnet every daemon shares
this machine's cores and the links cost nothing, so a put's time is its CPU and queues: what
``bench_wan.py`` finds above the network's floor. The primary's puts are the baseline of the
same run: a backup's request takes one more hop, to the primary, and nothing else differs.
Compare fresh testnets with fresh ones: an hour-old one cost 15-25% more a put.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from daemon.control.client import ControlClient  # noqa: E402
from testnet.cpu import process_cpu_s  # noqa: E402
from testnet.local.launcher import load  # noqa: E402

WARM_PUTS = 10


def shard0(clients: dict[str, ControlClient]) -> tuple[str, list[str]]:
    """Shard 0's primary now and its other members, by node name."""
    primary, members = None, []
    for name, c in clients.items():
        for r in c.call("status")["services"]["consensus"]["replicas"]:
            if r["shard"] == 0:
                members.append(name)
                primary = name if r.get("primary") else primary
    if primary is None:
        raise SystemExit("bench_puts: shard 0 has no primary yet; wait until the testnet is up")
    return primary, [m for m in members if m != primary]


def timed_puts(client: ControlClient, pids: list[int], puts: int, tag: str) -> dict[str, Any]:
    for i in range(WARM_PUTS):
        client.call("kv.put", {"key": f"{tag}-warm-{i}", "value": "x"})
    cpu0, t0 = sum(process_cpu_s(p) for p in pids), time.monotonic()
    lat = sorted(client.call("kv.put", {"key": f"{tag}-{i}", "value": "x"})["latency_ms"]
                 for i in range(puts))
    cpu, wall = sum(process_cpu_s(p) for p in pids) - cpu0, time.monotonic() - t0
    return {"latency_ms": {"p50": round(statistics.median(lat), 1),
                           "p90": round(lat[int(0.9 * (len(lat) - 1))], 1)},
            "cpu_s_per_put": round(cpu / puts, 3), "cores_busy": round(cpu / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", required=True, type=Path, help="the testnet's directory")
    ap.add_argument("--puts", type=int, default=300)
    args = ap.parse_args()
    state = load(args.dir)
    nodes = {n.name: n for n in state.nodes if n.pid}
    clients = {name: ControlClient(n.socket) for name, n in nodes.items()}
    pids = [n.pid for n in nodes.values() if n.pid]
    primary, backups = shard0(clients)
    if not backups:
        raise SystemExit("bench_puts: shard 0 has one member; a backup needs at least two")
    tag = f"bench-puts-{int(time.time())}"
    out = {"nodes": len(nodes), "committee_size": len(backups) + 1, "puts": args.puts,
           "from_primary": {"client": primary, **timed_puts(clients[primary], pids, args.puts,
                                                            f"{tag}-p")},
           "from_backup": {"client": backups[0], **timed_puts(clients[backups[0]], pids,
                                                              args.puts, f"{tag}-b")}}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

"""What a committee mesh costs and saves: the same committee, all-to-all and meshed, in one run.

Runs N real committee services (real PBFT replicas, Ed25519, SQLite) over the in-process
network (``testnet.memnet``) in virtual time, once with every member talking to every other
(the baseline: the mesh threshold raised above N) and once over the committee mesh
(``consensus.mesh``), submits the same key-value writes, and prints one JSON line:

- ``peers``: most distinct peers a member sent consensus frames to (what it must be
  connected to);
- ``frames_per_node``: mean and most frames a member sent for the writes (flooding makes
  every member forward every broadcast to its other neighbours: about ``degree`` times the
  frames of all-to-all, the price of the bounded connections);
- ``bytes_per_node``: mean bytes a member sent.

The in-process network has no latency, so the extra hops of the mesh do not show here.
Frame counts vary by a few percent between runs: a signer's context is random per process,
so envelope bytes differ, and routes to one member are picked by the frame's hash.

Usage: ``python scripts/bench_mesh.py [--members 48] [--writes 10] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import trio
import trio.testing

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from consensus.mesh import MESH_ABOVE, MESH_DEGREE  # noqa: E402
from daemon.clock import TrioClock  # noqa: E402
from daemon.committees.relay import MESH_PROTOCOL, ROUTE_PROTOCOL  # noqa: E402
from daemon.committees.service import PROTOCOL, CommitteeService  # noqa: E402
from daemon.genesis import make_genesis  # noqa: E402
from daemon.ledger.shard import KV, LedgerShards  # noqa: E402
from daemon.storage.db import Database  # noqa: E402
from protocol.canonical import packb  # noqa: E402
from protocol.identity import NodeIdentity  # noqa: E402
from testnet.memnet import MemoryNet  # noqa: E402

CONSENSUS = (PROTOCOL, MESH_PROTOCOL, ROUTE_PROTOCOL)


async def run_once(members: int, writes: int, seed: int, meshed: bool, tmp: Path) -> dict[str, Any]:
    ids = [NodeIdentity(random.Random(seed * 100_003 + i).randbytes(32)) for i in range(members)]
    genesis = make_genesis("bench", ids, {"shards": 1, "difficulty": 0, "min_committee": members})
    net = MemoryNet()
    peers: dict[str, set[str]] = defaultdict(set)
    frames: dict[str, int] = defaultdict(int)
    sent_bytes: dict[str, int] = defaultdict(int)
    services = []
    for k, ident in enumerate(ids):
        host = net.host(ident.node_id)
        real = host.send

        def send(peer: str, protocol: str, frame: bytes, me: str = ident.node_id,
                 real: Any = real) -> bool:
            if counting and protocol in CONSENSUS:
                peers[me].add(peer)
                frames[me] += 1
                sent_bytes[me] += len(frame)
            return bool(real(peer, protocol, frame))
        host.send = send  # type: ignore[method-assign]
        svc = CommitteeService(ident, genesis, host,  # type: ignore[arg-type]  # in memory
                               Database(tmp / f"{meshed}-{k}.db"), LedgerShards(),
                               clock=TrioClock(1_750_000_000.0))
        if not meshed:
            svc.mesh_above = members  # the baseline: all-to-all
        services.append(svc)
    counting = False
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        await trio.sleep(5)  # the first clock reports, before counting
        counting = True
        for w in range(writes):
            client = services[w % len(services)]
            assert await client.submit(0, KV + packb(["put", f"k{w}", "v"])) == b"ok"
        counting = False
        nursery.cancel_scope.cancel()
    n = len(services)
    return {
        "peers_max": max(len(p) for p in peers.values()),
        "frames_per_node": {"mean": round(sum(frames.values()) / n), "max": max(frames.values())},
        "bytes_per_node_mean": round(sum(sent_bytes.values()) / n),
        "faults": sum(len(h.faults) for h in net.hosts.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=48)
    ap.add_argument("--writes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.members <= MESH_ABOVE:
        sys.exit(f"bench_mesh: --members must be above {MESH_ABOVE} (smaller committees "
                 "have no mesh)")
    with tempfile.TemporaryDirectory() as tmp:
        def one(meshed: bool) -> dict[str, Any]:
            return trio.run(run_once, args.members, args.writes, args.seed, meshed, Path(tmp),
                            clock=trio.testing.MockClock(autojump_threshold=0))
        baseline, mesh = one(False), one(True)
    print(json.dumps({"members": args.members, "writes": args.writes, "seed": args.seed,
                      "degree": MESH_DEGREE, "all_to_all": baseline, "mesh": mesh,
                      "frames_ratio": round(mesh["frames_per_node"]["mean"] /
                                            max(1, baseline["frames_per_node"]["mean"]), 1)}))


if __name__ == "__main__":
    main()

"""Per-node cost as the network grows: the real partial view, committees and churn, simulated.

Runs ``testnet.overlay_sim`` (the daemon's own ``daemon.p2p.overlay`` planner on every node,
committees drawn by ``consensus.committee``, churn from the availability trace generator) at
100, 1,000 and 10,000 nodes and prints one JSON line per size:

- connections per node: most at any step (committee links included), and most outside the
  node's committees (view + inbound + work);
- rounds for a change to reach every up node over the connections (delta anti-entropy
  forwards news to all connected peers each round), next to log2(N) as the baseline;
- idle bytes/s per node, computed from the real message sizes our code produces: anti-entropy
  digests (built by ``crdt.digests.digest_messages`` exactly as a replica builds them: one
  context row per record writer, in parts once they outgrow one message; every 30 s per
  connection),
  capability-record refreshes (the real record encoding, every ``REFRESH_S`` per node,
  crossing each overlay link once) and RTT pings.

Usage: ``python scripts/sim_scale.py [--sizes 100,1000,10000] [--seed 1] [--duration 600]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from crdt.antientropy import AntiEntropyConfig  # noqa: E402
from crdt.digests import digest_messages  # noqa: E402
from crdt.dots import CausalContext  # noqa: E402
from daemon.p2p.config import P2PConfig  # noqa: E402
from protocol.schema import encode_body  # noqa: E402
from daemon.capabilities import build_record, record_to_wire  # noqa: E402
from daemon.p2p.rtt import PROBE_EVERY  # noqa: E402
from daemon.sched import AvailabilityHistory, summarize  # noqa: E402
from daemon.softstate.service import ENVELOPE_MARGIN, REFRESH_S  # noqa: E402
from protocol.canonical import packb  # noqa: E402
from protocol.identity import NodeIdentity  # noqa: E402
from testnet.overlay_sim import OverlaySim, SimConfig  # noqa: E402

NODE_ID_CHARS = len(NodeIdentity(bytes(32)).node_id)
SIGNATURE = 64
PING_BYTES = 4 * 32 + 4 * 40  # two round trips of 32 bytes, with yamux/noise framing


ENVELOPE = 200  # signed envelope around each message: sender, nonce, time, signature


def digest_sizes(writers: int) -> dict[str, int]:
    """The real digest messages for ``writers`` record writers (one dot each, typical): their
    total bytes, how many parts, and the largest, next to the frame cap they must fit."""
    ctx = CausalContext({f"{'x' * (NODE_ID_CHARS - 6)}{i:06d}": 3 for i in range(writers)})
    msgs = digest_messages({"caps": ctx}, session=1, applied_session=1, applied_seq=1,
                           max_bytes=P2PConfig().max_frame - ENVELOPE_MARGIN)
    sizes = [len(packb(encode_body(m), maps=False)) + ENVELOPE for m in msgs]
    return {"total": sum(sizes), "parts": len(sizes), "largest": max(sizes),
            "frame_cap": P2PConfig().max_frame}


def record_bytes() -> int:
    """One capability record as the soft state carries it (with its dot signature)."""
    node = NodeIdentity(bytes(range(32))).node_id
    rec = build_record(node, slots=4, memory_mib=8192, runtimes=("wasm32-wasi",
                       "wasm32-wasi@0123456789abcdef"), listen=(f"/ip4/203.0.113.7/tcp/7400/p2p/{node}",),
                       attestation=None, availability=summarize(AvailabilityHistory(), 1e9).to_wire(),
                       load_permille=250, domain=node, now_ms=1_700_000_000_000,
                       generation=1_700_000_000_000)
    return len(packb(record_to_wire(rec))) + SIGNATURE + 2 * NODE_ID_CHARS


def idle_traffic(nodes: int, overlay_links: float, kept: float) -> dict[str, float]:
    """Bytes/s a node sends plus receives when nothing happens but soft-state upkeep."""
    every = AntiEntropyConfig().digest_every_ms / 1000
    digests = 2 * overlay_links * digest_sizes(nodes)["total"] / every
    refresh = nodes * record_bytes() * overlay_links / REFRESH_S  # each record crosses each link
    pings = (overlay_links + kept) * PING_BYTES / PROBE_EVERY
    return {"digests": round(digests), "record_refresh": round(refresh), "pings": round(pings),
            "total": round(digests + refresh + pings)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    args = ap.parse_args()
    for n in [int(x) for x in args.sizes.split(",")]:
        started = time.process_time()
        step = 5.0 if n <= 1000 else 15.0
        sim = OverlaySim(SimConfig(nodes=n, seed=args.seed, duration_s=args.duration, step_s=step))
        r = sim.run()
        links = r.mean_connections - min(r.mean_connections, _mean_kept(sim))
        traffic = idle_traffic(n, links, _mean_kept(sim))
        digest = digest_sizes(n)
        print(json.dumps({
            "nodes": n, "seed": args.seed, "simulated_s": args.duration,
            "up_mean": round(r.up_mean, 1), "churn_events": r.churn_events,
            "committee_size": r.committee_size, "shards": r.shards,
            "connections": {"max": r.max_connections, "p99": r.p99_connections,
                            "mean": round(r.mean_connections, 1),
                            "max_outside_committees": r.max_overlay_connections,
                            "p99_outside_committees": r.p99_overlay_connections,
                            "seed_max": r.seeds_max_connections},
            "dissemination_rounds": {"max": max(r.dissemination_rounds),
                                     "samples": r.dissemination_rounds,
                                     "baseline_log2_n": round(math.log2(n), 1)},
            "reached_fraction_min": r.reached_fraction_min,
            "idle_bytes_per_s": traffic,
            "sizes": {"record": record_bytes(), "digest": digest},
            "targets": {"connections": 64, "idle_bytes_per_s": 5000},
            "met": {"connections": r.max_connections <= 64,
                    "idle_bytes_per_s": traffic["total"] <= 5000,
                    "dissemination_log_n": max(r.dissemination_rounds) <= math.log2(n),
                    "digest_parts_under_frame_cap": digest["largest"] <= digest["frame_cap"]},
            "cpu_s": round(time.process_time() - started, 1),
        }), flush=True)


def _mean_kept(sim: OverlaySim) -> float:
    up = [i for i in range(sim.cfg.nodes) if sim.up[i]]
    return sum(len(sim.committee_members[i] & sim.conns[i]) for i in up) / max(1, len(up))


if __name__ == "__main__":
    main()

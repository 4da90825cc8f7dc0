#!/usr/bin/env python3
"""PBFT with real Ed25519, end to end in one process; prints one JSON object.

    .venv/bin/python scripts/bench_consensus.py            # n = 4, 7, 16
    .venv/bin/python scripts/bench_consensus.py --quick    # fewer requests

For each committee size n, n replicas and a set of clients exchange real signed envelopes
(``protocol.envelope``: sealed by the sender, opened - decoded, checked, verified, replay
window - by the receiver's shell) over a lossless network driven in synchronous *rounds*: every
message sent in round r is delivered in round r+1. Reported:

- ``requests_per_s``: committed requests per second of CPU, all n replicas and the clients
  sharing this one core; ``requests_per_s_per_replica_core``: the same if each replica had
  its own core (requests / CPU of the busiest replica, the primary);
- ``commit_latency_rounds``: rounds from a client's submit to its f+1-th matching reply
  (5 is the protocol's minimum: request, pre-prepare, prepare, commit, reply);
- ``messages_per_request``: with batching off and one client, against Castro-Liskov's
  2n^2 - n + 1 (request 1, pre-prepare n-1, prepare (n-1)^2, commit n(n-1), reply n);
  checkpoints and status messages are listed apart;
- ``crypto``: signatures made and checked per request (counted), their bare cost with pynacl
  (``crypto_sign`` / ``crypto_sign_open``, timed in this run at the same message sizes), the
  CPU actually spent per request, and ``overhead_vs_crypto`` = (CPU - crypto) / crypto: the
  protocol's own work on top of the cryptography (target <= 0.5);
- ``channel_votes``: the same loaded run with the daemon's shell, which takes prepares,
  commits and replies from their sender's own connection without checking the envelope's
  signature (``consensus.crypto.Ed25519Verifier.open_direct``): CPU per request and its ratio
  to the run above, in which every envelope's signature is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter, deque
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nacl.bindings  # noqa: E402

from consensus.actions import Broadcast, Send  # noqa: E402
from consensus.client import Client  # noqa: E402
from consensus.config import ReplicaConfig  # noqa: E402
from consensus.crypto import CHANNEL_TAKEN, Ed25519Signer, Ed25519Verifier  # noqa: E402
from consensus.replica import Replica  # noqa: E402
from consensus.statemachine import KeyValueMachine, kv_op  # noqa: E402
from protocol.envelope import EnvelopeOpener  # noqa: E402
from protocol.identity import NodeIdentity, node_id_from_public_key  # noqa: E402

NET = "novacron-bench"
clock = time.process_time_ns


class Counting:
    """Counts the signatures made and checked, with the bytes each covered."""

    def __init__(self) -> None:
        self.signs = 0
        self.sign_bytes = 0
        self.verifies = 0
        self.verify_bytes = 0


class CountingSigner(Ed25519Signer):
    def __init__(self, ident: NodeIdentity, ctx: int, count: Counting) -> None:
        super().__init__(ident, NET, ctx)
        self.count = count

    def seal(self, msg: Any, now: float) -> bytes:
        raw = super().seal(msg, now)
        self.count.signs += 1
        self.count.sign_bytes += len(raw) - 67 + 32  # the signed bytes: domain/type + payload
        return raw

    def sign_vote(self, data: bytes) -> bytes:
        self.count.signs += 1
        self.count.sign_bytes += len(data) + 24
        return super().sign_vote(data)


class CountingVerifier(Ed25519Verifier):
    def __init__(self, count: Counting) -> None:
        super().__init__(NET)
        self.count = count

    def open(self, raw: bytes) -> Any:
        self.count.verifies += 1
        self.count.verify_bytes += len(raw) - 67 + 32
        return super().open(raw)

    def verify_vote(self, pk: bytes, data: bytes, sig: bytes) -> bool:
        self.count.verifies += 1
        self.count.verify_bytes += len(data) + 24
        return super().verify_vote(pk, data, sig)


def run(n: int, requests: int, clients: int, batch: int, inflight: int,
        rng: random.Random, channel: bool = False) -> dict[str, Any]:
    """``channel``: open as the daemon does a frame read from its sender's own connection
    (``open_direct``: votes on the channel's word); otherwise every signature is checked."""
    count = Counting()
    idents = [NodeIdentity(rng.randbytes(32)) for _ in range(n)]
    committee = tuple(i.public_key for i in idents)
    cfg = ReplicaConfig(1, 1, committee, checkpoint_interval=64, window=256, batch_size=batch,
                        max_inflight=inflight, view_change_timeout=1e9, status_interval=1e9)
    verifier = CountingVerifier(count)
    nodes: dict[bytes, Any] = {}
    openers: dict[bytes, EnvelopeOpener] = {}
    for ident in idents:
        nodes[ident.public_key] = Replica(cfg, CountingSigner(ident, rng.getrandbits(63), count),
                                          verifier, KeyValueMachine())
        openers[ident.public_key] = EnvelopeOpener(NET)
    cl: dict[bytes, Client] = {}
    for k in range(clients):
        ident = NodeIdentity(rng.randbytes(32))
        cl[ident.public_key] = Client(cfg, CountingSigner(ident, rng.getrandbits(63), count),
                                      retry=1e9, max_retry=1e9)
        openers[ident.public_key] = EnvelopeOpener(NET)
    direct = Ed25519Verifier(NET)
    ids = {pk: node_id_from_public_key(pk) for pk in (*nodes, *cl)}
    cpu: Counter[bytes] = Counter()
    kinds: Counter[str] = Counter()
    queue: deque[tuple[bytes, bytes, bytes]] = deque()  # (from, to, raw) of the current round
    latencies: list[int] = []
    submitted: dict[bytes, int] = {}
    issued = done = 0
    rnd = 0

    def emit(src: bytes, actions: list[Any], out: deque) -> None:
        for a in actions:
            if type(a) is Send:
                out.append((src, a.to, a.data))
            elif type(a) is Broadcast:
                for pk in committee:
                    if pk != src and pk not in a.skip:
                        out.append((src, pk, a.data))

    nxt: deque = deque()
    while done < requests:
        rnd += 1
        for pk, c in cl.items():  # idle clients submit
            if not c.busy and issued < requests:
                issued += 1
                submitted[pk] = rnd
                t = clock()
                acts = c.submit(kv_op("add", "k", 1), float(rnd))
                cpu[pk] += clock() - t
                emit(pk, acts, nxt)
        queue, nxt = nxt, deque()
        if not queue:
            raise RuntimeError(f"stalled at round {rnd} with {done}/{requests} done")
        for src, dst, raw in queue:
            t = clock()
            if channel:
                env = direct.open_direct(raw, ids[src])
            else:
                env = openers[dst].open(raw)
            if not channel or env.type not in CHANNEL_TAKEN:
                count.verifies += 1
                count.verify_bytes += len(raw) - 67 + 32
            kinds[env.type] += 1
            node = nodes.get(dst)
            if node is not None:
                acts = node.receive(env, float(rnd))
                cpu[dst] += clock() - t
                emit(dst, acts, nxt)
            else:
                c = cl[dst]
                before = c.busy
                c.receive(env, float(rnd))
                cpu[dst] += clock() - t
                if before and not c.busy:
                    done += 1
                    latencies.append(rnd - submitted[dst] + 1)
    total_cpu = sum(cpu.values()) / 1e9
    busiest = max(cpu[pk] for pk in committee) / 1e9
    latencies.sort()
    phase = {k: v for k, v in kinds.items() if k in (
        "pbft.request", "pbft.preprepare", "pbft.prepare", "pbft.commit", "pbft.reply")}
    return dict(n=n, requests=requests, rounds=rnd, total_cpu=total_cpu, busiest_cpu=busiest,
                count=count, kinds=kinds, phase_messages=sum(phase.values()),
                latency_median=latencies[len(latencies) // 2], latency_max=latencies[-1])


def bare_costs(rng: random.Random) -> tuple[float, float, float, float]:
    """pynacl sign and verify, in seconds: (per call, per byte) for each, fitted at 100 and
    4000 bytes."""
    ident = NodeIdentity(rng.randbytes(32))
    secret = ident.seed + ident.public_key
    out = []
    for op in ("sign", "verify"):
        pts = []
        for size in (100, 4000):
            data = rng.randbytes(size)
            signed = nacl.bindings.crypto_sign(data, secret)
            reps = 2000 if size == 100 else 500
            t = clock()
            for _ in range(reps):
                if op == "sign":
                    nacl.bindings.crypto_sign(data, secret)
                else:
                    nacl.bindings.crypto_sign_open(signed, ident.public_key)
            pts.append((size, (clock() - t) / 1e9 / reps))
        per_byte = (pts[1][1] - pts[0][1]) / (pts[1][0] - pts[0][0])
        out += [pts[0][1] - per_byte * pts[0][0], max(per_byte, 0.0)]
    return out[0], out[1], out[2], out[3]


def main() -> None:
    ap = argparse.ArgumentParser(description="PBFT benchmark with real Ed25519")
    ap.add_argument("--sizes", default="4,7,16")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rng = random.Random(2024)
    sign_a, sign_b, ver_a, ver_b = bare_costs(rng)
    results = []
    t0 = time.perf_counter()
    for n in (int(x) for x in args.sizes.split(",")):
        reqs = (100 if args.quick else 400) if n <= 7 else (40 if args.quick else 150)
        # messages per request: batching off, one client -> compare with 2n^2 - n + 1
        plain = run(n, max(10, reqs // 10), clients=1, batch=1, inflight=1, rng=rng)
        loaded = run(n, reqs, clients=8 * n, batch=16, inflight=4, rng=rng)
        channel = run(n, reqs, clients=8 * n, batch=16, inflight=4, rng=rng, channel=True)
        c = loaded["count"]
        crypto = (c.signs * sign_a + c.sign_bytes * sign_b + c.verifies * ver_a +
                  c.verify_bytes * ver_b)
        r = loaded["requests"]
        results.append({
            "n": n,
            "requests": r,
            "requests_per_s": round(r / loaded["total_cpu"], 1),
            "requests_per_s_per_replica_core": round(r / loaded["busiest_cpu"], 1),
            "commit_latency_rounds": {"unloaded_median": plain["latency_median"],
                                      "loaded_median": loaded["latency_median"],
                                      "loaded_max": loaded["latency_max"]},
            "messages_per_request": {
                "three_phase_plus_request_reply_unbatched": round(
                    plain["phase_messages"] / plain["requests"], 2),
                "formula_2n2_minus_n_plus_1": 2 * n * n - n + 1,
                "all_unbatched": round(sum(plain["kinds"].values()) / plain["requests"], 2),
                "all_batched": round(sum(loaded["kinds"].values()) / r, 2),
                "by_kind_unbatched": {k: round(v / plain["requests"], 2)
                                      for k, v in sorted(plain["kinds"].items())},
            },
            "crypto": {
                "signs_per_request": round(c.signs / r, 2),
                "verifies_per_request": round(c.verifies / r, 2),
                "bare_crypto_ms_per_request": round(crypto / r * 1e3, 4),
                "cpu_ms_per_request": round(loaded["total_cpu"] / r * 1e3, 4),
                "overhead_vs_crypto": round((loaded["total_cpu"] - crypto) / crypto, 3),
            },
            "channel_votes": {
                "verifies_per_request": round(channel["count"].verifies / r, 2),
                "cpu_ms_per_request": round(channel["total_cpu"] / r * 1e3, 4),
                "cpu_vs_all_checked": round(channel["total_cpu"] / loaded["total_cpu"], 3),
            },
        })
    print(json.dumps({
        "benchmark": "pbft_real_ed25519",
        "baseline_bare_pynacl_us": {"sign_100B": round((sign_a + 100 * sign_b) * 1e6, 2),
                                    "verify_100B": round((ver_a + 100 * ver_b) * 1e6, 2)},
        "results": results,
        "target_overhead_vs_crypto": 0.5,
        "time_s": round(time.perf_counter() - t0, 1),
    }))


if __name__ == "__main__":
    main()

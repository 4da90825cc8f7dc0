#!/usr/bin/env python3
"""Sizes of a job's ledger requests as they go into a request, packed and plain; prints JSON.

    .venv/bin/python scripts/bench_pack.py [--workers 30] [--repeat 20]

A ``Place`` carries every task's explanation verbatim, and its proposer sends it to each
member of the committee (requests go to all members of a committee that orders by reference);
batch bodies and commit proofs carry it again. ``daemon.ledger.shard.pack_operation``
compresses ledger operations over 1 KiB. Cases: a ``Place`` of one task, and one as full as
the planner makes them (``MAX_PLACE_OP_BYTES`` plain), over ``--workers`` candidates; a
``Submit`` of 100 tasks with their inputs inline. For each: the operation's bytes plain (the
baseline: what went before) and packed, their ratio, and the CPU time to pack and to undo it
next to one Ed25519 signature check (the baseline: every member checks each request's
signature anyway), measured in this process; the bytes a primary's uplink carries for the
operation in a 19-member committee (18 copies), plain and packed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consensus.sizes import MAX_OPERATION  # noqa: E402
from daemon.jobs.planner import MAX_PLACE_OP_BYTES  # noqa: E402
from daemon.ledger.shard import ledger_operation, pack_operation  # noqa: E402
from protocol.compression import decompress  # noqa: E402
from protocol.identity import NodeIdentity, verify_signature  # noqa: E402
from protocol.messages import ledger as ops  # noqa: E402
from tests.daemon.ledger.ledger_helpers import Harness, ident  # noqa: E402

BACKUPS = 18
"""The copies a primary of a 19-member committee (30 daemons) sends of its own request."""


def best(fn: Callable[[], Any], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return min(out)


def case(name: str, raw: bytes, repeat: int, verify_s: float) -> dict[str, Any]:
    wire = pack_operation(raw)
    pack_s = best(lambda: pack_operation(raw), repeat)
    unpack_s = best(lambda: decompress(wire[1:], MAX_OPERATION), repeat) if wire != raw else 0.0
    return {"case": name, "plain_bytes": len(raw), "packed_bytes": len(wire),
            "ratio": round(len(raw) / len(wire), 2),
            "primary_uplink_kib": {"plain": round(BACKUPS * len(raw) / 1024, 1),
                                   "packed": round(BACKUPS * len(wire) / 1024, 1)},
            "pack_us": round(pack_s * 1e6, 1), "unpack_us": round(unpack_s * 1e6, 1),
            "unpack_vs_signature_check": round(unpack_s / verify_s, 2)}


def measure(n_workers: int, repeat: int) -> dict[str, Any]:
    workers = [ident(100 + i) for i in range(n_workers)]
    signer = NodeIdentity(b"\x07" * 32)
    signature = signer.sign(b"x" * 200)
    verify_s = best(lambda: [verify_signature(signer.public_key, b"x" * 200, signature)
                             for _ in range(100)], repeat) / 100
    cases = []
    h = Harness()
    job = h.submit(n_tasks=64)
    cands = h.candidates(workers)
    one = ledger_operation(h.proposal(job, cands, tasks=[0]))
    full, n = one, 1
    while n < 64:
        more = ledger_operation(h.proposal(job, cands, tasks=range(n + 1)))
        if len(more) > MAX_PLACE_OP_BYTES:
            break
        full, n = more, n + 1
    for tasks, raw in ((1, one), (n, full)):
        cases.append(case(f"place {tasks} task(s), {n_workers} candidates", raw, repeat,
                          verify_s))
    submit = ops.Submit("t", b"\x01" * 32, 100, ("t",), tuple(
        ops.TaskInput(hashlib.sha256(str(i).encode()).digest(), 8, str(i).encode())
        for i in range(100)),
        10**9, 16, 60_000, 1024, 2, 2, 4, 0, 3600, 0, 1, 100)
    cases.append(case("submit 100 inline inputs", ledger_operation(submit), repeat, verify_s))
    return {"benchmark": "pack", "workers": n_workers,
            "signature_check_us": round(verify_s * 1e6, 1), "cases": cases}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print(json.dumps(measure(args.workers, args.repeat), indent=1))


if __name__ == "__main__":
    main()

"""A dishonest volunteer, for fault injection: the real daemon, but every task output it
reports is altered (``novacron testnet up --cheaters K``).

It computes each task honestly and then lies about the result, the cheapest cheat a real
volunteer could attempt. The committees must never accept one of its results: replication
pairs it with honest workers, the disagreement adds replicas, and its reputation falls.
A resumable task's state is "tampered with" from its third checkpoint on (every digest it
reports from then differs from the honest one), so the committee catches it there, mid-run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys

from daemon.runtime import pool as _pool

_honest_run_task = _pool.WorkerPool.run_task


TAMPER_FROM_CHECKPOINT = 2


async def _lying_run_task(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    honest = kwargs.get("on_checkpoint")
    if honest is not None:
        async def tampered(c):  # type: ignore[no-untyped-def]
            if c.seq >= TAMPER_FROM_CHECKPOINT:
                c = dataclasses.replace(c, digest=hashlib.sha256(b"tampered" + c.digest).digest())
            await honest(c)
        kwargs["on_checkpoint"] = tampered
    outcome = await _honest_run_task(self, *args, **kwargs)
    return dataclasses.replace(outcome, output=outcome.output + b" (forged by a cheater)")


_pool.WorkerPool.run_task = _lying_run_task  # type: ignore[method-assign]

if __name__ == "__main__":
    from daemon.cli.main import main

    sys.exit(main())

"""A dishonest volunteer, for fault injection: the real daemon, but every task output it
reports is altered (``novacron testnet up --cheaters K``).

It computes each task honestly and then lies about the result, the cheapest cheat a real
volunteer could attempt. The committees must never accept one of its results: replication
pairs it with honest workers, the disagreement adds replicas, and its reputation falls.
"""

from __future__ import annotations

import dataclasses
import sys

from daemon.runtime import pool as _pool

_honest_run_task = _pool.WorkerPool.run_task


async def _lying_run_task(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    outcome = await _honest_run_task(self, *args, **kwargs)
    return dataclasses.replace(outcome, output=outcome.output + b" (forged by a cheater)")


_pool.WorkerPool.run_task = _lying_run_task  # type: ignore[method-assign]

if __name__ == "__main__":
    from daemon.cli.main import main

    sys.exit(main())

"""Run one task locally, in the same sandbox a volunteer uses: ``python -m daemon.runtime``.

Why: before submitting a job, a researcher wants to see that the module works, what it prints,
and how much fuel a task takes (to set the job's fuel limit). Example::

    python -m daemon.runtime examples/pi/pi.wasm --input "7 1000000"

The module's stdout goes to stdout; the status, fuel and time go to stderr. Exit code: 0 if the
task ended OK, 1 otherwise, 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import Limits, LimitsError
from daemon.runtime.sandbox import Sandbox
from protocol.messages.tasks import TaskStatus


def main(argv: list[str] | None = None) -> int:
    d = Limits()
    parser = argparse.ArgumentParser(prog="python -m daemon.runtime",
                                     description="Run one task in the NovaCron sandbox.")
    parser.add_argument("module", type=Path, help="a wasm32-wasi command module (.wasm)")
    parser.add_argument("--input", help="the task input (default: read this process's stdin)")
    parser.add_argument("--arg", action="append", default=[], dest="args",
                        help="an argument after argv[0] (repeat for more)")
    parser.add_argument("--fuel", type=int, default=d.fuel)
    parser.add_argument("--memory-mb", type=int, default=d.memory_pages // 16)
    parser.add_argument("--wall-s", type=float, default=d.wall_s)
    parser.add_argument("--max-output", type=int, default=d.max_output)
    parser.add_argument("--seed", default="", help="hex seed of the random stream")
    parser.add_argument("--time-ns", type=int, default=0, help="what the realtime clock reads")
    ns = parser.parse_args(argv)
    try:
        wasm = ns.module.read_bytes()
        limits = Limits(fuel=ns.fuel, memory_pages=ns.memory_mb * 16, wall_s=ns.wall_s,
                        max_output=ns.max_output)
        seed = bytes.fromhex(ns.seed)
    except OSError as err:
        parser.exit(2, f"cannot read {ns.module}: {err.strerror}\n")
    except (LimitsError, ValueError) as err:
        parser.exit(2, f"{err}\n")
    stdin = ns.input.encode() if ns.input is not None else sys.stdin.buffer.read()
    argv0 = ns.module.stem.encode()
    outcome = Sandbox().run(module_hash(wasm), wasm, stdin, limits, seed=seed,
                            argv=(argv0, *(a.encode() for a in ns.args)),
                            logical_time_ns=ns.time_ns)
    sys.stdout.buffer.write(outcome.output)
    sys.stdout.flush()
    print(f"{outcome.status.name}: {outcome.detail}; fuel {outcome.fuel_used:,}; "
          f"memory {outcome.memory_pages * 64} KiB; {outcome.wall_s:.3f} s", file=sys.stderr)
    return 0 if outcome.status is TaskStatus.OK else 1


if __name__ == "__main__":
    sys.exit(main())

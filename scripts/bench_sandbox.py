"""Benchmark: how long starting a task takes from the module cache, against the baselines.

Prints one JSON object. The figure is ``sandbox_start_cached_us.median``: ``Sandbox.run`` of a
module whose ``_start`` returns at once, from the in-memory cache (new Store, fuel, memory and
epoch limits, watchdog armed, ``InstancePre.instantiate``, look up and call ``_start``,
classify). Target: <= 200 microseconds. Measured in the same run:

- ``pi_start_cached_us``: the same for the pi example with 0 samples: wasi-libc's real start-up
  (stdin read, stdout write: four host calls) on top.
- ``compile_each_time_us`` (baseline): compile the module from its bytes, link, instantiate
  and run: what every task would pay without the cache.
- ``wasmtime_wasi_us`` (baseline): the pi run through wasmtime's own WASI (``define_wasi``,
  a ``WasiConfig`` per task with argv, stdin file and captured stdout), also pre-linked.
- ``disk_cache_load_us``: a new worker's first use of a module another worker compiled.
- ``pool_task_us``: the empty task through the trio ``WorkerPool`` (pipe + msgpack + process).
Firecracker's published microVM start (125 ms) is quoted for scale, not measured.

Run: ``.venv/bin/python scripts/bench_sandbox.py [--quick]`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trio  # noqa: E402
import wasmtime  # noqa: E402

from daemon.runtime.cache import module_hash  # noqa: E402
from daemon.runtime.outcome import Limits  # noqa: E402
from daemon.runtime.pool import PoolConfig, WorkerPool  # noqa: E402
from daemon.runtime.sandbox import Sandbox, engine_config  # noqa: E402
from protocol.messages.tasks import TaskStatus  # noqa: E402

TARGET_US = 200.0
PI = (ROOT / "examples" / "pi" / "pi.wasm").read_bytes()
EMPTY = bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "_start")))'))
PI_INPUT = b"1 0\n"


def timed(fn: Callable[[], object], n: int) -> dict[str, float]:
    fn()  # warm
    samples = []
    for _ in range(n):
        t = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t) / 1000)
    samples.sort()
    return {"median": round(statistics.median(samples), 1),
            "p10": round(samples[len(samples) // 10], 1),
            "p90": round(samples[len(samples) * 9 // 10], 1), "n": n}


def check(outcome: object) -> None:
    assert getattr(outcome, "status") is TaskStatus.OK, outcome


def bench_cached(sandbox: Sandbox, wasm: bytes, stdin: bytes, n: int) -> dict[str, float]:
    digest = module_hash(wasm)
    check(sandbox.run(digest, wasm, stdin, Limits()))
    return timed(lambda: check(sandbox.run(digest, None, stdin, Limits())), n)


def bench_compile_each_time(n: int) -> dict[str, float]:
    def once() -> None:
        sandbox.cache._lru.clear()  # noqa: SLF001 - the baseline is "no cache"
        check(sandbox.run(digest, PI, PI_INPUT, Limits()))

    sandbox = Sandbox(None)
    digest = module_hash(PI)
    return timed(once, n)


def bench_wasmtime_wasi(n: int, tmp: Path) -> dict[str, float]:
    cfg, _ = engine_config()
    engine = wasmtime.Engine(cfg)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    pre = linker.instantiate_pre(wasmtime.Module(engine, PI))
    stdin = tmp / "stdin"
    stdin.write_bytes(PI_INPUT)
    out: list[bytes] = []

    def once() -> None:
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["pi"]
        wasi.stdin_file = str(stdin)
        wasi.stdout_custom = out.append
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        store.set_fuel(10**12)
        store.set_epoch_deadline(1)
        instance = pre.instantiate(store)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        try:
            start(store)
        except wasmtime.ExitTrap as exit_:
            assert exit_.code == 0

    result = timed(once, n)
    assert b"".join(out) == b"0 0\n" * (n + 1), b"".join(out)[:40]
    return result


def bench_disk_load(n: int, tmp: Path) -> dict[str, float]:
    cache_dir = tmp / "modules"
    digest = module_hash(PI)
    Sandbox(cache_dir).cache.get(digest, PI)
    sandbox = Sandbox(cache_dir)

    def once() -> None:
        sandbox.cache._lru.clear()  # noqa: SLF001 - force the disk path
        assert sandbox.cache.get(digest).source == "disk"

    return timed(once, n)


def bench_pool(n: int) -> dict[str, float]:
    result: dict[str, float] = {}

    async def main() -> None:
        pool = WorkerPool(PoolConfig(workers=1, nice=0))
        digest = module_hash(EMPTY)
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            check(await pool.run_task(digest, EMPTY, b"", Limits()))
            samples = []
            for _ in range(n):
                t = time.perf_counter_ns()
                check(await pool.run_task(digest, None, b"", Limits()))
                samples.append((time.perf_counter_ns() - t) / 1000)
            nursery.cancel_scope.cancel()
        samples.sort()
        result.update(median=round(statistics.median(samples), 1),
                      p10=round(samples[n // 10], 1), p90=round(samples[n * 9 // 10], 1), n=n)

    trio.run(main)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (CI smoke run)")
    args = parser.parse_args()
    many, few = (300, 5) if args.quick else (3000, 30)
    load_before = os.getloadavg()[0]
    sandbox = Sandbox(None)
    with tempfile.TemporaryDirectory() as tmp:
        figures = {
            "sandbox_start_cached_us": bench_cached(sandbox, EMPTY, b"", many),
            "pi_start_cached_us": bench_cached(sandbox, PI, PI_INPUT, many),
            "compile_each_time_us": bench_compile_each_time(few),
            "wasmtime_wasi_us": bench_wasmtime_wasi(many, Path(tmp)),
            "disk_cache_load_us": bench_disk_load(few * 3, Path(tmp)),
            "pool_task_us": bench_pool(many // 3),
        }
    start = figures["sandbox_start_cached_us"]["median"]
    print(json.dumps({
        "benchmark": "sandbox_start",
        "wasmtime": metadata.version("wasmtime"),
        **figures,
        "target_us": TARGET_US,
        "meets_target": start <= TARGET_US,
        "speedup_vs_compile": round(figures["compile_each_time_us"]["median"] / start, 1),
        "reference_firecracker_microvm_start_us_published": 125_000,
        "cores": os.cpu_count(),
        "loadavg_1min_before": round(load_before, 2),
    }))


if __name__ == "__main__":
    main()

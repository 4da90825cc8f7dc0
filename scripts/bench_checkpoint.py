"""Benchmark: what a checkpoint of a resumable task costs, in time and bytes.

Prints one JSON object. For 16 MiB and 256 MiB of linear memory (a real wasmtime memory), with
1% and 10% of its 4 KiB pages rewritten since the previous checkpoint (pages chosen at random,
each filled with fresh float64 values, as a numerical task's state would be), it measures the
runtime's own checkpoint path (``resumable._Checkpointer.take``: find changed pages against the
previous checkpoint, read globals and WASI state, msgpack, SHA-256, zstd):

- ``delta_ms`` / ``delta_bytes``: the delta checkpoint (what a volunteer takes and ships every
  interval);
- ``keyframe_ms`` / ``keyframe_bytes``: a key frame of the same memory (every non-zero page);
- ``restore_ms``: decoding and replaying key frame + delta into a memory image;
- baseline ``copy_ms`` / ``copy_bytes``: copying the whole memory uncompressed, in the same run
  (what a checkpoint without delta encoding or compression would at least cost).

Times are the fastest of ``--repeat`` runs (a shared machine only adds time).
Run: ``.venv/bin/python scripts/bench_checkpoint.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import wasmtime  # noqa: E402

from daemon.runtime import checkpoint as ck  # noqa: E402
from daemon.runtime.resumable import CheckpointPolicy, _Checkpointer, memory_array  # noqa: E402
from daemon.runtime.wasi import TaskIO  # noqa: E402

MIB = 1 << 20


def module(pages: int) -> bytes:
    return bytes(wasmtime.wat2wasm(
        f'(module (memory (export "memory") {pages}) (global (export "g") (mut i32) '
        '(i32.const 0)) (func (export "novacron_step") (result i32) i32.const 0))'))


def fastest(fn, repeat: int) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000, value


def measure(size: int, fraction: float, repeat: int, rng: np.random.Generator) -> dict[str, object]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, module(size // 65536)), [])
    memory = instance.exports(store)["memory"]
    assert isinstance(memory, wasmtime.Memory)
    mem = memory_array(memory, store)
    mem.view(np.float64)[:] = np.cumsum(rng.normal(size=size // 8))  # a smooth numerical state
    io = TaskIO(b"", (b"task",), b"", 0, 1 << 20)
    pages = size // ck.CHUNK
    dirty = rng.choice(pages, size=max(1, int(pages * fraction)), replace=False)

    def key_then_delta(measure_delta: bool):
        taker = _Checkpointer(CheckpointPolicy(every_fuel=1, keyframe_every=1 << 30), None)
        key = taker.take(instance, store, memory, io, 1, 1)
        view = mem.view(np.float64).reshape(pages, ck.CHUNK // 8)
        view[dirty] = rng.normal(size=(len(dirty), ck.CHUNK // 8))
        if not measure_delta:
            return key, None
        t = time.perf_counter()
        delta = taker.take(instance, store, memory, io, 2, 2)
        return key, (time.perf_counter() - t, delta)

    delta_s = float("inf")
    for _ in range(repeat):
        key, (took, delta) = key_then_delta(True)
        delta_s = min(delta_s, took)
    key_ms, keyframe = fastest(
        lambda: _Checkpointer(CheckpointPolicy(every_fuel=1), None).take(
            instance, store, memory, io, 1, 1), repeat)
    copy_ms, copied = fastest(lambda: mem.copy(), repeat)
    bounds = {"max_memory": size, "max_output": 1 << 20}
    restore_ms, restored = fastest(lambda: ck.replay(
        [ck.decode(key.blob, **bounds), ck.decode(delta.blob, **bounds)], delta.digest), repeat)
    assert np.array_equal(restored.memory[dirty[0] * ck.CHUNK:(dirty[0] + 1) * ck.CHUNK],
                          mem[dirty[0] * ck.CHUNK:(dirty[0] + 1) * ck.CHUNK])
    return {
        "memory_mib": size // MIB, "dirty_fraction": fraction, "dirty_pages": len(dirty),
        "delta_ms": round(delta_s * 1000, 2), "delta_bytes": len(delta.blob),
        "keyframe_ms": round(key_ms, 2), "keyframe_bytes": len(keyframe.blob),
        "restore_ms": round(restore_ms, 2),
        "baseline_copy_ms": round(copy_ms, 2), "baseline_copy_bytes": copied.nbytes,
        "delta_bytes_vs_copy": round(len(delta.blob) / copied.nbytes, 4),
        "delta_time_vs_copy": round(delta_s * 1000 / copy_ms, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes-mib", default="16,256")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    rows = [measure(int(s) * MIB, f, args.repeat, rng)
            for s in args.sizes_mib.split(",") for f in (0.01, 0.10)]
    print(json.dumps({"bench": "checkpoint", "chunk_bytes": ck.CHUNK,
                      "zstd_level": ck.ZSTD_LEVEL, "seed": args.seed, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

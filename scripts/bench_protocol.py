"""Benchmark of protocol/: prints one JSON object with every section's figures and baselines.

Usage: ``.venv/bin/python scripts/bench_protocol.py [--section NAME ...] [--seed N]``

Sections (each a function returning a dict; add one by adding it to ``SECTIONS``):

- ``compression``: ``protocol.compression`` on text-like, random and zero bytes against raw
  zstd on the same bytes, and how fast and how small a 1 KiB decompression bomb is refused.
- ``tensor``: every tensor codec on 16 MiB of normal and of Laplace float32: ratio vs raw,
  relative L2 error, encode and decode MB/s (best of 5), with raw zstd level 1 on the same bytes
  as the baseline, and the issue's targets as ``{target, value, passed}`` entries.
- ``envelope``: seal + open (encode, sign, verify, decode, replay window) of 1 KiB bodies next
  to bare pynacl sign + verify of the same bytes, in interleaved rounds.
- ``choice``: what ``choose_codec`` picks for a 10 Gbit/s and a 1 Mbit/s link, and its cost.

MB is 10**6 bytes of the *raw* input, for encode and decode alike, so speeds compare directly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zstandard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.compression import compress, decompress  # noqa: E402
from protocol.errors import DecompressionError  # noqa: E402
from protocol.tensor import (Codec, CodecSpec, choose_codec, decode_tensor,  # noqa: E402
                             encode_tensor)
from protocol.tensor.choice import relative_error  # noqa: E402

TENSOR_BYTES = 16 << 20
REPEATS = 5


def _best_seconds(action: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return best, result


def _mb_per_s(size: int, seconds: float) -> float:
    return round(size / seconds / 1e6, 1)


def _target(name: str, value: float, passed: bool) -> dict[str, Any]:
    return {"target": name, "value": round(value, 6), "passed": bool(passed)}


def _zstd_baseline(data: bytes, level: int = 1) -> dict[str, Any]:
    compressor = zstandard.ZstdCompressor(level=level)
    seconds, packed = _best_seconds(lambda: compressor.compress(data))
    decompressor = zstandard.ZstdDecompressor()
    back_seconds, _ = _best_seconds(lambda: decompressor.decompress(packed))
    return {"codec": f"zstd-{level} (raw bytes)", "ratio": round(len(data) / len(packed), 4),
            "encode_MBps": _mb_per_s(len(data), seconds),
            "decode_MBps": _mb_per_s(len(data), back_seconds)}


def section_compression(seed: int) -> dict[str, Any]:
    """protocol.compression vs raw zstd-3, and the bomb refusal."""
    rng = np.random.default_rng(seed)
    words = np.array(["task", "result", "peer", "epoch", "shard", "commit", "view", "quorum"])
    inputs = {
        "text_like": " ".join(rng.choice(words, size=400_000)).encode(),
        "random": rng.bytes(4 << 20),
        "zeros": bytes(4 << 20),
    }
    rows = {}
    for name, data in inputs.items():
        seconds, packed = _best_seconds(lambda: compress(data))
        back, _ = _best_seconds(lambda: decompress(packed, max_size=len(data)))
        rows[name] = {"bytes": len(data), "method": "zstd" if packed[0] else "raw",
                      "ratio": round(len(data) / len(packed), 3),
                      "compress_MBps": _mb_per_s(len(data), seconds),
                      "decompress_MBps": _mb_per_s(len(data), back),
                      "baseline": _zstd_baseline(data, level=3)}
    bomb = bytes((1,)) + zstandard.ZstdCompressor(level=19).compress(bytes(32 << 20))

    def refuse() -> None:
        try:
            decompress(bomb, max_size=1 << 20)
        except DecompressionError:
            return
        raise AssertionError("bomb was not refused")

    seconds, _ = _best_seconds(refuse, repeats=20)
    tracemalloc.start()
    refuse()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"inputs": rows, "bomb": {"bytes": len(bomb), "expands_to": 32 << 20,
                                     "cap": 1 << 20, "refused_in_us": round(seconds * 1e6, 1),
                                     "peak_alloc_bytes": peak}}


def _measure_codec(x: np.ndarray, spec: CodecSpec) -> dict[str, Any]:
    encode_seconds, wire = _best_seconds(lambda: encode_tensor(x, spec))
    decode_seconds, y = _best_seconds(lambda: decode_tensor(wire, max_elements=x.size,
                                                            max_bytes=x.nbytes))
    return {"codec": spec.describe(), "bytes": len(wire), "ratio": round(x.nbytes / len(wire), 4),
            "rel_l2_error": float(f"{relative_error(x, y):.6g}"),
            "encode_MBps": _mb_per_s(x.nbytes, encode_seconds),
            "decode_MBps": _mb_per_s(x.nbytes, decode_seconds)}


def section_tensor(seed: int) -> dict[str, Any]:
    """Every codec on 16 MiB of normal and Laplace float32, with zstd-1 as the baseline."""
    rng = np.random.default_rng(seed)
    n = TENSOR_BYTES // 4
    data = {"normal": rng.standard_normal(n, dtype=np.float32),
            "laplace": rng.laplace(size=n).astype(np.float32)}
    result: dict[str, Any] = {"elements": n, "raw_bytes": TENSOR_BYTES}
    targets = []
    for name, x in data.items():
        baseline = _zstd_baseline(x.tobytes(), level=1)
        codecs = {row["codec"]: row for row in (_measure_codec(x, CodecSpec(c)) for c in Codec)}
        result[name] = {"baseline": baseline, "codecs": list(codecs.values())}
        int8, f16, int4 = codecs["int8/128"], codecs["float16"], codecs["int4/16"]
        targets += [
            _target(f"{name}: int8 ratio >= 4", int8["ratio"], int8["ratio"] >= 4),
            _target(f"{name}: int8 rel L2 <= 1%", int8["rel_l2_error"],
                    int8["rel_l2_error"] <= 0.01),
            _target(f"{name}: float16 ratio >= 2", f16["ratio"], f16["ratio"] >= 2),
            _target(f"{name}: float16 rel L2 <= 1e-3", f16["rel_l2_error"],
                    f16["rel_l2_error"] <= 1e-3),
            _target(f"{name}: int4 ratio >= 7", int4["ratio"], int4["ratio"] >= 7),
            _target(f"{name}: int4 rel L2 <= 10%", int4["rel_l2_error"],
                    int4["rel_l2_error"] <= 0.10),
            _target(f"{name}: int8 encode MB/s >= 0.5 x zstd-1 MB/s",
                    int8["encode_MBps"] / baseline["encode_MBps"],
                    int8["encode_MBps"] >= 0.5 * baseline["encode_MBps"]),
        ]
    result["targets"] = targets
    result["all_passed"] = all(t["passed"] for t in targets)
    return result


def section_choice(seed: int) -> dict[str, Any]:
    """Codec choice for the issue's two link extremes, on 16 MiB of normal float32."""
    x = np.random.default_rng(seed + 1).standard_normal(TENSOR_BYTES // 4, dtype=np.float32)
    links = {"10 Gbit/s": (10e9 / 8, 0.5e-3, 0.01), "1 Mbit/s": (1e6 / 8, 0.05, 0.1)}
    out: dict[str, Any] = {"time_budget_s": 1.0}
    for name, (bandwidth, latency, error_budget) in links.items():
        seconds, choice = _best_seconds(lambda: choose_codec(
            x, bandwidth=bandwidth, latency=latency, time_budget=1.0, error_budget=error_budget))
        out[name] = {"bandwidth_Bps": bandwidth, "latency_s": latency,
                     "error_budget": error_budget, "chosen": choice.spec.describe(),
                     "choice_ms": round(seconds * 1e3, 2),
                     "table": [{k: (round(v, 6) if isinstance(v, float) else v)
                                for k, v in row.items()} for row in choice.table()]}
    fast, slow = out["10 Gbit/s"]["chosen"], out["1 Mbit/s"]["chosen"]
    out["targets"] = [
        _target("10 Gbit/s picks lossless or float16", 1.0, fast in ("lossless", "float16")),
        _target("1 Mbit/s picks a low-bit codec", 1.0, slow.split("/")[0] in
                ("int4", "sign1", "topk")),
    ]
    return out


def section_envelope(seed: int) -> dict[str, Any]:
    """Envelope encode+sign+verify+decode of 1 KiB bodies vs bare pynacl sign+verify."""
    import random

    import nacl.bindings

    from protocol.envelope import EnvelopeOpener, EnvelopeSealer
    from protocol.identity import NodeIdentity
    from protocol.messages.blobs import BlobChunk

    rng = random.Random(seed)
    ident = NodeIdentity(rng.randbytes(32))
    body = rng.randbytes(1024)
    msg = BlobChunk(b"\x01" * 32, 0, len(body), body)
    secret = ident.seed + ident.public_key
    n = 2000

    def bare() -> None:
        for _ in range(n):
            sig = nacl.bindings.crypto_sign(body, secret)[:64]
            nacl.bindings.crypto_sign_open(sig + body, ident.public_key)

    sealer = EnvelopeSealer(ident, "novacron-bench", context=1)
    opener = EnvelopeOpener("novacron-bench")

    def envelope() -> None:
        for _ in range(n):
            opener.open(sealer.seal(msg, timestamp_ms=1), now_ms=1)

    # Interleaved rounds, best of each: both see the same machine load.
    t_bare = t_env = float("inf")
    for _ in range(REPEATS + 2):
        t_bare = min(t_bare, _best_seconds(bare, 1)[0])
        t_env = min(t_env, _best_seconds(envelope, 1)[0])
    ratio = t_env / t_bare
    return {
        "body_bytes": len(body),
        "envelope_per_s": round(n / t_env),
        "bare_sign_verify_per_s": round(n / t_bare),
        "envelope_us": round(t_env / n * 1e6, 1),
        "bare_us": round(t_bare / n * 1e6, 1),
        "targets": [_target("envelope cost / bare sign+verify <= 1.5", round(ratio, 3), ratio <= 1.5)],
    }


SECTIONS: dict[str, Callable[[int], dict[str, Any]]] = {
    "envelope": section_envelope,
    "compression": section_compression,
    "tensor": section_tensor,
    "choice": section_choice,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", action="append", choices=sorted(SECTIONS),
                        help="run only this section (repeatable); default: all")
    parser.add_argument("--seed", type=int, default=20240710)
    args = parser.parse_args(argv)
    names = args.section or list(SECTIONS)
    result: dict[str, Any] = {"seed": args.seed}
    for name in names:
        result[name] = SECTIONS[name](args.seed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

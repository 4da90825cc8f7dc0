"""Fuzz targets and seeds for compression and the tensor codec (see ``fuzz_targets``)."""

from __future__ import annotations

import numpy as np

from protocol.compression import compress
from protocol.tensor import DECODERS, Codec, CodecSpec, ErrorFeedback, encode_tensor

CODEC_TARGETS = dict(DECODERS)


def _seeds() -> dict[str, list[bytes]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    encoded = [encode_tensor(x, CodecSpec(c)) for c in Codec]
    fb = ErrorFeedback()
    fb.encode("w", x, CodecSpec(Codec.INT8))
    out: dict[str, list[bytes]] = {}
    for name in DECODERS:
        key = name
        if "decompress" in name:
            out[key] = [compress(b"novacron " * 200), compress(x.tobytes())]
        elif "Feedback" in name:
            out[key] = [fb.to_bytes()]
        else:
            out[key] = encoded
    return out


CODEC_SEEDS = _seeds()

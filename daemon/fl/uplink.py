"""Updates on the wire: the quantization level per client and round, error feedback, bytes.

A client's update (``local - global``) travels as a canonical msgpack map ``{name: tensor}``
(sorted names, each tensor in ``protocol.tensor``'s wire form). The codec is chosen per client
and round from the predicted link by the reward of Zhang et al. (arXiv 2407.08462)::

    R = -0.5 * T / T_budget - 0.5 * QE / QE_budget,   T = rtt + size / bandwidth

evaluated for every candidate level on the update itself (``choose_codec`` encodes it, so size
and relative error are measured, not modelled), largest R wins. Budgets are the job's: the
upload time a round may spend and the relative error one send may add. A slow link pushes T
up, so it takes fewer bits; a fast one can afford more.

The choice is the direct argmax of that reward. The paper trains a DDQN for it; a one-step
choice whose every outcome we can evaluate exactly gains nothing from a learned value (see
docs/fl.md for the measured comparison and why the argmax is kept).

Error feedback (``protocol.tensor.ErrorFeedback``) carries what a lossy level dropped into the
client's next send, so nothing is lost over rounds, only delayed. Encoding is deterministic
(numpy's codecs, fixed order, canonical msgpack): replicas of one client's task with the same
inputs produce the same bytes, so the certificate covers exactly what was sent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import msgpack
import numpy as np

from protocol.errors import MalformedMessage, MessageTooLarge, RemoteProtocolError
from protocol.tensor import (Codec, CodecChoice, CodecSpec, ErrorFeedback, choose_codec,
                             decode_tensor, encode_tensor, read_header)
from daemon.fl.params import MAX_TENSORS, FLError, Params, flatten

ADAPTIVE_LEVELS: tuple[CodecSpec, ...] = (
    CodecSpec(Codec.FLOAT16), CodecSpec(Codec.INT8), CodecSpec(Codec.INT4),
    CodecSpec(Codec.SIGN1),
)
"""Levels the adaptive choice picks from: 16, ~8, ~4 and ~1 bits per element."""
FLOAT32 = CodecSpec(Codec.LOSSLESS)
INT8 = CodecSpec(Codec.INT8)


@dataclass(frozen=True, slots=True)
class Budgets:
    """What a round may spend: upload seconds, and relative L2 error per send."""

    time_s: float = 0.25
    error: float = 0.25
    w_time: float = 0.5
    w_error: float = 0.5

    def __post_init__(self) -> None:
        if not (self.time_s > 0 and self.error > 0):
            raise FLError("FL time and error budgets must be > 0")
        if not (self.w_time >= 0 and self.w_error >= 0):
            raise FLError("FL reward weights must be >= 0")


def choose_level(update: Mapping[str, np.ndarray], *, bandwidth: float, rtt: float,
                 budgets: Budgets, feedback: ErrorFeedback | None = None,
                 levels: Sequence[CodecSpec] = ADAPTIVE_LEVELS) -> CodecChoice:
    """The level with the largest reward for this update over a link of ``bandwidth`` B/s.

    With ``feedback`` the residuals it will add are included, since that is what is sent.
    """
    if feedback is not None:
        update = {name: _corrected(feedback, name, array) for name, array in update.items()}
    vector = flatten(update).astype(np.float32)
    return choose_codec(vector, bandwidth=bandwidth, latency=rtt, time_budget=budgets.time_s,
                        error_budget=budgets.error, w1=budgets.w_time, w2=budgets.w_error,
                        candidates=tuple(levels))


def encode_update(update: Mapping[str, np.ndarray], spec: CodecSpec,
                  feedback: ErrorFeedback | None = None) -> bytes:
    """The canonical wire bytes of ``update`` at level ``spec`` (error feedback if given)."""
    entries: dict[str, bytes] = {}
    for name in sorted(update):
        array = np.asarray(update[name], dtype=np.float32)
        if feedback is not None and spec != FLOAT32:
            entries[name] = feedback.encode(name, array, spec)
        else:
            entries[name] = encode_tensor(array, spec)
    return bytes(msgpack.packb(entries, use_bin_type=True))


def decode_update(data: bytes, like: Mapping[str, np.ndarray]) -> Params:
    """Decode untrusted update bytes; each tensor must match ``like`` in name and shape.

    Raises ``RemoteProtocolError`` subclasses only; caps come from ``like`` (an update is never
    larger than the model it updates).
    """
    limit = sum(int(np.asarray(a).nbytes) for a in like.values()) * 2 + 64 * len(like) + 1024
    if len(data) > limit:
        raise MessageTooLarge(f"update of {len(data)} bytes; this model's cap is {limit}")
    try:
        entries = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True,
                                  max_map_len=MAX_TENSORS, max_array_len=0, max_str_len=1024,
                                  max_bin_len=len(data))
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MalformedMessage(f"update is not msgpack: {exc}") from None
    if not isinstance(entries, dict) or sorted(entries) != sorted(like):
        raise MalformedMessage("update's tensor names do not match the model's")
    out: Params = {}
    for name in sorted(like):
        blob = entries[name]
        want = np.asarray(like[name])
        if not isinstance(blob, bytes):
            raise MalformedMessage(f"update tensor {name!r} is not bytes")
        array = decode_tensor(blob, max_elements=max(want.size, 1), max_bytes=max(want.size * 8, 1))
        if array.shape != want.shape:
            raise MalformedMessage(f"update tensor {name!r} has shape {array.shape},"
                                   f" expected {want.shape}")
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise MalformedMessage(f"update tensor {name!r} has NaN or infinite values")
        out[name] = array
    return out


def wire_codec(data: bytes) -> str:
    """Label of the level an encoded update used (for the round's history)."""
    try:
        entries = msgpack.unpackb(data, raw=False, max_bin_len=len(data))
        first = entries[min(entries)]
        return read_header(first)[0].codec.name.lower()
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException,
            RemoteProtocolError):
        return "?"


def _corrected(feedback: ErrorFeedback, name: str, array: np.ndarray) -> np.ndarray:
    x = np.asarray(array, dtype=np.float32)
    residual = feedback.residual(name)
    if residual is None or residual.shape != x.shape:
        return x
    corrected: np.ndarray = x + residual
    return corrected

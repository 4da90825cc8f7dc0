"""Error feedback for repeated lossy sends of the same named tensor (EF-SGD).

A lossy codec drops part of every update. Sent once, that part is lost; sent every round (a
gradient, a model delta), the dropped parts add up to a bias. Error feedback keeps what was
dropped and adds it to the next send of the same tensor::

    corrected = x + residual[name]
    wire      = encode(corrected)
    residual  = corrected - decode(wire)

so the sum of everything the receiver decoded over rounds equals the sum of the inputs minus
the last residual alone: nothing is lost, only delayed. The residual is measured from the bytes
actually sent (the codec's own decoder), so it includes scale rounding and padding.

``ErrorFeedback`` is plain state: no I/O, no clock. ``to_bytes``/``from_bytes`` save it (a
daemon keeps it across restarts) as a canonical msgpack map ``{name: lossless tensor}`` with
sorted keys; ``from_bytes`` checks it like any untrusted input.
"""

from __future__ import annotations

import msgpack
import numpy as np

from protocol.errors import LocalProtocolError, MalformedMessage, MessageTooLarge
from protocol.tensor.codec import CodecSpec, decode_tensor, encode_tensor
from protocol.tensor.wire import DEFAULT_MAX_BYTES, DEFAULT_MAX_ELEMENTS, Codec

MAX_TENSORS = 4096
"""Residual entries a saved state may hold."""


class ErrorFeedback:
    """Residuals per tensor name; ``encode`` folds them into each send."""

    def __init__(self) -> None:
        self._residuals: dict[str, np.ndarray] = {}

    def encode(self, name: str, array: np.ndarray, spec: CodecSpec | Codec) -> bytes:
        """Encode ``array + residual[name]`` and keep the new residual.

        A residual whose shape or dtype no longer matches ``array`` (the tensor was resized)
        is dropped rather than misapplied.
        """
        x = np.asarray(array)
        if x.dtype.kind != "f":
            raise LocalProtocolError(f"error feedback needs a float array, got {x.dtype}")
        residual = self._residuals.get(name)
        if residual is not None and (residual.shape != x.shape or residual.dtype != x.dtype):
            residual = None
        corrected = x if residual is None else x + residual
        data = encode_tensor(corrected, spec)
        sent = decode_tensor(data, max_elements=max(corrected.size, 1),
                             max_bytes=max(corrected.nbytes, 1))
        self._residuals[name] = corrected - sent
        return data

    def residual(self, name: str) -> np.ndarray | None:
        """What has been dropped so far for ``name`` and will ride on its next send."""
        return self._residuals.get(name)

    def names(self) -> list[str]:
        """Tensor names with a residual, sorted."""
        return sorted(self._residuals)

    def reset(self, name: str | None = None) -> None:
        """Forget one residual (``name``) or all of them."""
        if name is None:
            self._residuals.clear()
        else:
            self._residuals.pop(name, None)

    def to_bytes(self) -> bytes:
        """Canonical bytes of the whole state (residuals encoded LOSSLESS)."""
        entries = {name: encode_tensor(self._residuals[name], Codec.LOSSLESS)
                   for name in sorted(self._residuals)}
        return bytes(msgpack.packb(entries, use_bin_type=True))

    @classmethod
    def from_bytes(cls, data: bytes, *, max_elements: int = DEFAULT_MAX_ELEMENTS,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> ErrorFeedback:
        """Restore a state saved by ``to_bytes``; caps apply to the residuals together."""
        try:
            entries = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True,
                                      max_map_len=MAX_TENSORS, max_array_len=0,
                                      max_str_len=1024, max_bin_len=len(data))
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise MalformedMessage(f"error feedback state is not msgpack: {exc}") from None
        if not isinstance(entries, dict) or not all(
                isinstance(name, str) and isinstance(blob, bytes)
                for name, blob in entries.items()):
            raise MalformedMessage("error feedback state must map tensor names to bytes")
        if msgpack.packb(dict(sorted(entries.items())), use_bin_type=True) != bytes(data):
            # sorted keys, no duplicates, shortest encodings: one state has one byte string
            raise MalformedMessage("error feedback state is not in canonical form")
        state = cls()
        for name, blob in entries.items():
            residual = decode_tensor(blob, max_elements=max_elements, max_bytes=max_bytes)
            if residual.dtype.kind != "f":
                raise MalformedMessage(f"residual {name!r} is {residual.dtype}, not float")
            max_elements -= residual.size
            max_bytes -= residual.nbytes
            if max_elements < 0 or max_bytes < 0:
                raise MessageTooLarge("error feedback state is over its size caps")
            state._residuals[name] = residual
        return state

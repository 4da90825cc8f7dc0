"""The pipe protocol between the pool (trio, in the daemon) and its worker processes.

Each message is a 4-byte big-endian length and a msgpack map. The worker first sends
``{"ready": pid}``; then for every request ``RunRequest`` it answers ``{"outcome": {...}}`` or
``{"missing": true}`` (module not cached there and no bytes sent). One request at a time per
worker, so no ids are needed. Both ends are our own code; sizes are still capped so a bug
cannot make the daemon allocate without bound.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from daemon.errors import DaemonError
from daemon.runtime.outcome import Limits

HEADER = struct.Struct(">I")
MAX_FRAME = 1 << 31


class WireError(DaemonError):
    """A malformed frame on a worker pipe: the worker is replaced."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    module_hash: bytes
    module: bytes | None
    stdin: bytes
    limits: Limits
    seed: bytes
    argv: tuple[bytes, ...]
    logical_time_ns: int

    def to_wire(self) -> dict[str, Any]:
        return {"hash": self.module_hash, "module": self.module, "stdin": self.stdin,
                "limits": self.limits.to_wire(), "seed": self.seed, "argv": list(self.argv),
                "time": self.logical_time_ns}

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> RunRequest:
        return cls(bytes(wire["hash"]), None if wire["module"] is None else bytes(wire["module"]),
                   bytes(wire["stdin"]), Limits.from_wire(wire["limits"]), bytes(wire["seed"]),
                   tuple(bytes(a) for a in wire["argv"]), int(wire["time"]))


def encode(message: dict[str, Any]) -> bytes:
    body: bytes = msgpack.packb(message, use_bin_type=True)
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes, limit: int = MAX_FRAME) -> int:
    length: int = HEADER.unpack(header)[0]
    if length > limit:
        raise WireError(f"frame of {length} bytes passes the limit of {limit}")
    return length


def decode(body: bytes) -> dict[str, Any]:
    try:
        message = msgpack.unpackb(body, raw=False)
    except (ValueError, msgpack.UnpackException) as err:
        raise WireError(f"undecodable frame: {err}") from None
    if not isinstance(message, dict):
        raise WireError("frame is not a map")
    return message

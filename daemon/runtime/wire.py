"""The pipe protocol between the pool (trio, in the daemon) and its worker processes.

Each message is a 4-byte big-endian length and a msgpack map. The worker first sends
``{"ready": pid}``; then for every request ``RunRequest`` it answers ``{"outcome": {...}}`` or
``{"missing": true}`` (module not cached there and no bytes sent). A resumable task asked to
checkpoint (``checkpoint_fuel``) first sends ``{"checkpoint": {...}}`` frames as it takes them
(``checkpoint_to_wire``), then its outcome. One request at a time per
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
from daemon.runtime.resumable import Checkpoint

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
    checkpoint_fuel: int = 0
    """A resumable module checkpoints every this much fuel (0: no checkpoints)."""
    resume: tuple[bytes, ...] = ()
    """The checkpoint chain to continue from (a key frame, then deltas), or empty."""
    resume_digest: bytes = b""
    files: tuple[tuple[str, bytes], ...] = ()
    """Extra read-only files for a Python task, (path under its directory, bytes): the
    sticky files its input named (``protocol.sticky``)."""

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"hash": self.module_hash, "module": self.module, "stdin": self.stdin,
                "limits": self.limits.to_wire(), "seed": self.seed, "argv": list(self.argv),
                "time": self.logical_time_ns}
        if self.checkpoint_fuel or self.resume:
            wire.update(ckpt=self.checkpoint_fuel, resume=list(self.resume),
                        resume_digest=self.resume_digest)
        if self.files:
            wire["files"] = [[name, data] for name, data in self.files]
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> RunRequest:
        return cls(bytes(wire["hash"]), None if wire["module"] is None else bytes(wire["module"]),
                   bytes(wire["stdin"]), Limits.from_wire(wire["limits"]), bytes(wire["seed"]),
                   tuple(bytes(a) for a in wire["argv"]), int(wire["time"]),
                   int(wire.get("ckpt", 0)), tuple(bytes(b) for b in wire.get("resume", ())),
                   bytes(wire.get("resume_digest", b"")),
                   tuple((str(name), bytes(data)) for name, data in wire.get("files", ())))


def checkpoint_to_wire(c: Checkpoint) -> dict[str, Any]:
    return {"seq": c.seq, "steps": c.steps, "fuel": c.fuel_used, "digest": c.digest,
            "blob": c.blob, "keyframe": c.keyframe, "memory": c.memory_bytes, "chunks": c.chunks}


def checkpoint_from_wire(w: dict[str, Any]) -> Checkpoint:
    return Checkpoint(int(w["seq"]), int(w["steps"]), int(w["fuel"]), bytes(w["digest"]),
                      bytes(w["blob"]), bool(w["keyframe"]), int(w["memory"]), int(w["chunks"]))


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

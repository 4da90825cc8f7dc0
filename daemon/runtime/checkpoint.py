"""The checkpoint format: a resumable task's state between two steps, as bytes and a digest.

What a checkpoint holds: the task's linear memory (as the 4 KiB chunks that changed since the
previous checkpoint, or every non-zero chunk for a *key frame*), its exported globals, the
host side of its WASI world (output so far, stderr tail, stdin position, logical clock, the
random stream's position) and how far it got (steps, fuel used).

Bytes and digest:

- ``payload`` = msgpack of a fixed list (version, base digest, sequence number, steps, fuel,
  memory size, globals, host state, chunk indices as little-endian u32, chunk bytes). Nothing in
  it depends on the machine, the time or the order of a dict, so honest replicas that ran the
  same steps build byte-identical payloads.
- ``digest`` = SHA-256("novacron/checkpoint/1" || payload). A delta's payload names its base
  digest, so a digest commits to the whole state, not just the delta: two replicas agree on a
  digest only if they agree on every byte of memory, every global and every output byte. A key
  frame's base is empty: it is the whole state by itself.
- ``blob`` = b"NCK1" || zstd(payload). The digest is over the payload, not the blob, so
  replicas agree even if their zstd versions compress differently; whoever restores a blob
  decompresses it (bounded) and checks its digest before using a byte of it.

Restoring checkpoint *n* needs the chain from the last key frame up to *n*; key frames come
every ``keyframe_every`` checkpoints (deterministically), so older blobs can be pruned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import msgpack
import numpy as np
import zstandard

from daemon.errors import DaemonError

CHUNK = 4096
VERSION = 1
MAGIC = b"NCK1"
DOMAIN = b"novacron/checkpoint/1"
ZSTD_LEVEL = 3
PAYLOAD_SLACK = 1 << 20  # room for globals, host state and framing beyond memory and output
STDERR_MAX = 64 * 1024


class CheckpointError(DaemonError):
    """A checkpoint blob or chain that cannot be used: corrupt, too large or out of order."""


@dataclass(frozen=True, slots=True)
class HostState:
    """The WASI side of a task (``wasi.TaskIO``) that must survive a move."""

    stdout_len: int  # the output's total length at this checkpoint
    stdout_tail: bytes  # the output written since the base checkpoint (all of it in a key frame)
    stderr: bytes
    stdin_pos: int
    clock_ticks: int
    extra_ns: int
    random_counter: int
    random_spare: bytes

    def to_wire(self) -> list[object]:
        return [self.stdout_len, self.stdout_tail, self.stderr, self.stdin_pos,
                self.clock_ticks, self.extra_ns, self.random_counter, self.random_spare]

    @classmethod
    def from_wire(cls, wire: object) -> HostState:
        if not isinstance(wire, list) or len(wire) != 8:
            raise CheckpointError("bad host state")
        ints = [wire[i] for i in (0, 3, 4, 5, 6)]
        blobs = [wire[i] for i in (1, 2, 7)]
        if not all(isinstance(v, int) and v >= 0 for v in ints):
            raise CheckpointError("bad host state")
        if not all(isinstance(v, bytes) for v in blobs):
            raise CheckpointError("bad host state")
        return cls(wire[0], wire[1], wire[2], wire[3], wire[4], wire[5], wire[6], wire[7])


Global = tuple[str, str, int]
"""(export name, value type "i32"/"i64"/"f32"/"f64", value; floats as their IEEE bits)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One decoded checkpoint. ``indices`` and ``data`` are the chunks it carries."""

    base: bytes  # the previous checkpoint's digest; b"" for a key frame
    seq: int
    steps: int
    fuel_used: int
    memory_bytes: int
    globals: tuple[Global, ...]
    host: HostState
    indices: np.ndarray  # uint32 chunk numbers, ascending
    data: bytes  # len(indices) * CHUNK bytes
    digest: bytes

    @property
    def keyframe(self) -> bool:
        return not self.base


def encode(base: bytes, seq: int, steps: int, fuel_used: int, memory_bytes: int,
           globals_: Sequence[Global], host: HostState, indices: np.ndarray,
           data: bytes) -> tuple[bytes, bytes]:
    """``(blob, digest)`` for one checkpoint (see the module docstring)."""
    payload = msgpack.packb(
        [VERSION, base, seq, steps, fuel_used, memory_bytes,
         [list(g) for g in globals_], host.to_wire(),
         np.ascontiguousarray(indices, dtype="<u4").tobytes(), data],
        use_bin_type=True)
    digest = hashlib.sha256(DOMAIN + payload).digest()
    blob = MAGIC + zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=False,
                                            write_content_size=True).compress(payload)
    return blob, digest


def decode(blob: bytes, *, max_memory: int, max_output: int) -> Snapshot:
    """Decompress (bounded by the task's limits) and parse one blob. Raises CheckpointError."""
    if blob[:4] != MAGIC:
        raise CheckpointError("not a NovaCron checkpoint (bad magic)")
    limit = max_memory + max_output + STDERR_MAX + PAYLOAD_SLACK
    try:
        size = zstandard.frame_content_size(blob[4:])
    except zstandard.ZstdError as err:
        raise CheckpointError(f"corrupt checkpoint: {err}") from None
    if size < 0 or size > limit:
        raise CheckpointError(f"checkpoint payload of {size} bytes is over its bound {limit}")
    try:
        payload = zstandard.ZstdDecompressor().decompress(blob[4:], max_output_size=limit)
        wire = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as err:
        raise CheckpointError(f"corrupt checkpoint: {err}") from None
    if not isinstance(wire, list) or len(wire) != 10 or wire[0] != VERSION:
        raise CheckpointError("unknown checkpoint version or shape")
    _, base, seq, steps, fuel, mem, globs, host, idx, data = wire
    if not (isinstance(base, bytes) and len(base) in (0, 32)):
        raise CheckpointError("bad base digest")
    if not all(isinstance(v, int) and v >= 0 for v in (seq, steps, fuel, mem)):
        raise CheckpointError("bad counters")
    if mem % CHUNK or mem > max_memory:
        raise CheckpointError(f"memory of {mem} bytes is not whole chunks or over the limit")
    if not (isinstance(idx, bytes) and isinstance(data, bytes) and len(idx) % 4 == 0):
        raise CheckpointError("bad chunk table")
    indices = np.frombuffer(idx, dtype="<u4")
    if len(data) != len(indices) * CHUNK:
        raise CheckpointError("chunk table and data disagree")
    if len(indices) and (int(indices[-1]) >= mem // CHUNK or np.any(np.diff(indices) <= 0)):
        raise CheckpointError("chunk numbers out of range or not ascending")
    if not isinstance(globs, list) or not all(_is_global(g) for g in globs):
        raise CheckpointError("bad globals")
    state = HostState.from_wire(host)
    if len(state.stderr) > STDERR_MAX or state.stdout_len > max_output:
        raise CheckpointError("host state over its bounds")
    digest = hashlib.sha256(DOMAIN + payload).digest()
    return Snapshot(base, seq, steps, fuel, mem, tuple(tuple(g) for g in globs), state,
                    indices, data, digest)


def _is_global(g: object) -> bool:
    return (isinstance(g, list) and len(g) == 3 and isinstance(g[0], str)
            and g[1] in ("i32", "i64", "f32", "f64") and isinstance(g[2], int))


@dataclass(frozen=True, slots=True)
class Restored:
    """The state a chain of checkpoints adds up to."""

    last: Snapshot
    memory: np.ndarray  # uint8, last.memory_bytes long
    stdout: bytes


def replay(chain: Sequence[Snapshot], expect: bytes | None = None) -> Restored:
    """Apply a key frame and the deltas after it, checking each links to the one before.

    ``expect``: the digest the last checkpoint must have (the agreed one), if known.
    """
    if not chain or not chain[0].keyframe:
        raise CheckpointError("a chain must start at a key frame")
    memory = np.zeros(0, dtype=np.uint8)
    stdout = bytearray()
    prev: Snapshot | None = None
    for snap in chain:
        if prev is not None and (snap.base != prev.digest or snap.seq != prev.seq + 1):
            raise CheckpointError(f"checkpoint {snap.seq} does not follow {prev.seq}")
        if snap.keyframe:
            memory = np.zeros(snap.memory_bytes, dtype=np.uint8)
            stdout = bytearray()
        elif snap.memory_bytes < len(memory):
            raise CheckpointError("memory shrank between checkpoints")
        else:
            memory = np.concatenate([memory, np.zeros(snap.memory_bytes - len(memory), np.uint8)])
        chunks = memory.reshape(-1, CHUNK)
        if len(snap.indices):
            chunks[snap.indices.astype(np.intp)] = np.frombuffer(snap.data, np.uint8).reshape(
                -1, CHUNK)
        stdout += snap.host.stdout_tail
        if len(stdout) != snap.host.stdout_len:
            raise CheckpointError("output length does not add up")
        prev = snap
    assert prev is not None
    if expect is not None and prev.digest != expect:
        raise CheckpointError("the last checkpoint's digest is not the agreed one")
    return Restored(prev, memory, bytes(stdout))


class DeltaTracker:
    """The memory as of the last checkpoint, to find the chunks that changed since."""

    def __init__(self, memory: np.ndarray | None = None) -> None:
        self.prev = np.zeros(0, np.uint8) if memory is None else memory.copy()

    def delta(self, current: np.ndarray, keyframe: bool) -> tuple[np.ndarray, bytes]:
        """Chunk indices and bytes of ``current`` (uint8, whole chunks) to store, and remember
        it. A key frame stores every non-zero chunk; a delta every chunk that changed."""
        cur = current.view(np.uint64).reshape(-1, CHUNK // 8)
        n_old = len(self.prev) // CHUNK
        if keyframe:
            dirty = cur.any(axis=1)
        else:
            old = self.prev.view(np.uint64).reshape(-1, CHUNK // 8)
            dirty = np.empty(len(cur), dtype=bool)
            dirty[:n_old] = (cur[:n_old] != old).any(axis=1)
            dirty[n_old:] = cur[n_old:].any(axis=1)
        indices = np.flatnonzero(dirty).astype("<u4")
        data = cur[indices].tobytes()
        if len(self.prev) != len(current):
            grown = np.zeros(len(current), np.uint8)
            grown[:len(self.prev)] = self.prev
            self.prev = grown
        if keyframe:
            self.prev[:] = current
        elif len(indices):
            self.prev.view(np.uint64).reshape(-1, CHUNK // 8)[indices] = cur[indices]
        return indices, data

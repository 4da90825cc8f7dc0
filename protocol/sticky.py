"""Sticky files: state a task leaves on its volunteer for the same work's next task (as BOINC's).

Why: some work is a chain of tasks that each need the previous one's private state, too large
to send back and forth every time (federated learning's error-feedback residual is as large as
the model). The state stays where it was made: on the volunteers that ran the task, as a blob in
their own store; the next task names it by digest and by the volunteers that hold it, and runs
best on one of them (no byte moves); a volunteer that does not hold it fetches it from them.

Both halves ride on what replicas already agree on, so nothing new needs certifying:

- **In.** A task input may be an envelope, one line of text (so it passes through every input
  form of a job file, ``lines`` included)::

      @novacron-sticky/1 keep=<bytes> [file=<name>:<sha256 hex>:<size>:<holder>,<holder>...]... -- <stdin>

  The input is hashed into the ledger like any other, so every replica is told the same files.
  The worker fetches each file (its own store first, then the holders; the hash is checked),
  and the task sees it read-only as ``/job/sticky/<name>``, with what follows `` -- `` as its
  standard input. A worker that cannot get a file reports ``CRASHED`` (its fault, the replica
  goes elsewhere): running without it would make this replica disagree with the others.
- **Out.** A task told it may keep ``keep`` bytes may start its output with a kept frame:
  ``KEEP_MAGIC``, a 4-byte big-endian length, the kept bytes. The worker stores those bytes as a
  blob (pinned, the latest ``KEEP_COUNT`` kept files) and reports the rest as the task's output.
  The frame does not count against the task's output limit (``keep`` bounds it); the rest does.
  The kept bytes are never sent anywhere by this node; the task names their SHA-256 in its
  output, so the certificate covers which state exists, and honest replicas (deterministic
  tasks) hold the same bytes.

Why not files the task writes in the sandbox: its file tree is read-only by design (replicas must
see the same world), and a writable directory would need a second output channel through the
worker process; the output frame reuses the bounded stdout the sandbox already captures. Why the
envelope and not new offer fields: the ledger, the offers and placement stay as they are, and the
input is certified already. Sticky files are for Python tasks (a WebAssembly task has no file
tree): a WebAssembly task given an envelope is refused, the same way on every replica.

Pure: encoding, bounded decoding, splitting an output.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from protocol.errors import MalformedMessage

MAGIC = b"@novacron-sticky/1 "
SEPARATOR = b" -- "
MAX_HEADER = 4096
KEEP_MAGIC = b"\x00novacron-keep\x01"
KEEP_LENGTH = struct.Struct(">I")
KEEP_OVERHEAD = len(KEEP_MAGIC) + KEEP_LENGTH.size
"""A kept frame's bytes beyond what it keeps."""
STICKY_DIR = "sticky"
MAX_FILES = 4
MAX_HOLDERS = 8
MAX_FILE = 64 << 20
"""A sticky file is a blob: at most the blob store's largest (``daemon.blobs.store.MAX_BLOB``)."""
MAX_STDIN = 64 << 10
KEEP_COUNT = 64
"""Kept files a worker holds pinned (the oldest beyond are unpinned; the store may evict them)."""
KEEP_BYTES = 512 << 20
"""...and at most this many bytes of them."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_NODE = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,64}$")


class StickyError(MalformedMessage):
    """A malformed envelope (one line: what is wrong). The same on every replica: the task's
    input is at fault, not the volunteer."""


@dataclass(frozen=True, slots=True)
class StickyFile:
    name: str
    """The task reads it as ``sticky/<name>`` (relative to its working directory)."""
    sha256: bytes
    size: int
    holders: tuple[str, ...]
    """Volunteers that hold it (the workers whose certified result named it)."""


@dataclass(frozen=True, slots=True)
class StickyInput:
    stdin: bytes
    files: tuple[StickyFile, ...] = ()
    keep: int = 0
    """Bytes the task may leave on its volunteer (0: none)."""

    def encode(self) -> bytes:
        self.check()
        files = "".join(f" file={f.name}:{f.sha256.hex()}:{f.size}:{','.join(f.holders)}"
                        for f in self.files)
        return MAGIC + f"keep={self.keep}{files}".encode() + SEPARATOR + self.stdin

    def check(self) -> None:
        if len(self.stdin) > MAX_STDIN:
            raise StickyError(f"an envelope's stdin is {len(self.stdin):,} bytes; at most"
                              f" {MAX_STDIN:,}")
        if len(self.files) > MAX_FILES:
            raise StickyError(f"{len(self.files)} sticky files; at most {MAX_FILES}")
        if not 0 <= self.keep <= MAX_FILE:
            raise StickyError(f"keep must be 0..{MAX_FILE:,} bytes, got {self.keep}")
        names = set()
        for f in self.files:
            if not isinstance(f.name, str) or not _NAME.match(f.name):
                raise StickyError(f"sticky file name {f.name!r}: 1-64 letters, digits, '.', '_'"
                                  " or '-', not starting with a dot")
            if f.name in names:
                raise StickyError(f"sticky file {f.name!r} named twice")
            names.add(f.name)
            if not isinstance(f.sha256, bytes) or len(f.sha256) != 32:
                raise StickyError(f"sticky file {f.name!r}: its digest must be 32 bytes")
            if not 0 <= f.size <= MAX_FILE:
                raise StickyError(f"sticky file {f.name!r}: size must be 0..{MAX_FILE:,}")
            if not 1 <= len(f.holders) <= MAX_HOLDERS:
                raise StickyError(f"sticky file {f.name!r}: 1..{MAX_HOLDERS} holders")
            for h in f.holders:
                if not isinstance(h, str) or not _NODE.match(h):
                    raise StickyError(f"sticky file {f.name!r}: holder {h!r} is not a node id")


def is_envelope(data: bytes) -> bool:
    return data.startswith(MAGIC)


def decode(data: bytes) -> StickyInput | None:
    """The envelope in a task input, or None for an ordinary input. Bounded before reading."""
    if not is_envelope(data):
        return None
    end = data.find(SEPARATOR, 0, MAX_HEADER)
    if end < 0:
        raise StickyError(f"a sticky envelope's header ends with ' -- ' within {MAX_HEADER:,}"
                          " bytes")
    try:
        tokens = data[len(MAGIC):end].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise StickyError("a sticky envelope's header is ASCII") from None
    keep, files = None, []
    for token in tokens:
        key, eq, value = token.partition("=")
        if key == "keep" and eq and keep is None and value.isdigit() and len(value) <= 12:
            keep = int(value)
        elif key == "file" and eq:
            parts = value.split(":")
            if len(parts) != 4 or not re.fullmatch(r"[0-9a-f]{64}", parts[1]) or not (
                    parts[2].isdigit() and len(parts[2]) <= 12):
                raise StickyError(f"a sticky file is name:sha256:size:holder,...; got {value[:80]!r}")
            files.append(StickyFile(parts[0], bytes.fromhex(parts[1]), int(parts[2]),
                                    tuple(parts[3].split(","))))
        else:
            raise StickyError(f"unknown or repeated sticky envelope field {token[:40]!r}"
                              " (keep=, file=)")
        if len(files) > MAX_FILES:
            raise StickyError(f"more than {MAX_FILES} sticky files")
    if keep is None:
        raise StickyError("a sticky envelope says keep=<bytes> (0: keep nothing)")
    envelope = StickyInput(data[end + len(SEPARATOR):], tuple(files), keep)
    envelope.check()
    return envelope


def kept_frame(kept: bytes) -> bytes:
    """What a task prints first to leave ``kept`` on its volunteer (its output follows)."""
    return KEEP_MAGIC + KEEP_LENGTH.pack(len(kept)) + kept


def split_kept(output: bytes, keep: int) -> tuple[bytes | None, bytes]:
    """(kept bytes or None, the output to report). An output without a well-formed frame of at
    most ``keep`` bytes is reported whole: the same on every replica."""
    if keep <= 0 or not output.startswith(KEEP_MAGIC):
        return None, output
    start = len(KEEP_MAGIC) + KEEP_LENGTH.size
    if len(output) < start:
        return None, output
    (n,) = KEEP_LENGTH.unpack_from(output, len(KEEP_MAGIC))
    if n > keep or start + n > len(output):
        return None, output
    return output[start:start + n], output[start + n:]

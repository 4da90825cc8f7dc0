"""A content-addressed blob store on disk: modules, task inputs and outputs, by SHA-256.

Layout: ``<root>/<first two hex digits>/<hex digest>``. Writes go to a temporary file that is
fsynced and renamed into place, so a blob either exists whole and correct or not at all;
``get`` re-hashes what it reads, so a damaged file is treated as missing (and removed) rather
than served. Total size is bounded; the oldest unpinned blobs are evicted first.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from daemon.errors import DaemonError

DEFAULT_CAP = 2 << 30
MAX_BLOB = 64 << 20


class BlobTooLarge(DaemonError):
    pass


def blob_hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class BlobStore:
    def __init__(self, root: Path, cap_bytes: int = DEFAULT_CAP, max_blob: int = MAX_BLOB) -> None:
        self.root = root
        self.cap = cap_bytes
        self.max_blob = max_blob
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pinned: set[bytes] = set()
        self.total = sum(p.stat().st_size for p in root.glob("*/*") if ".tmp" not in p.name)

    def path(self, digest: bytes) -> Path:
        h = digest.hex()
        return self.root / h[:2] / h

    def has(self, digest: bytes) -> bool:
        return self.path(digest).exists()

    def size(self, digest: bytes) -> int | None:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put(self, data: bytes, pin: bool = False) -> bytes:
        if len(data) > self.max_blob:
            raise BlobTooLarge(f"blob of {len(data):,} bytes exceeds the {self.max_blob:,}-byte limit")
        digest = blob_hash(data)
        path = self.path(digest)
        if pin:
            self.pinned.add(digest)
        if path.exists():
            os.utime(path)
            return digest
        path.parent.mkdir(exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.total += len(data)
        if self.total > self.cap:
            self._evict()
        return digest

    def get(self, digest: bytes) -> bytes | None:
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if blob_hash(data) != digest:
            path.unlink(missing_ok=True)  # damaged on disk: never serve it
            self.total -= len(data)
            return None
        return data

    def read(self, digest: bytes, offset: int, length: int) -> tuple[bytes, int] | None:
        """A byte range and the blob's total size (ranges are verified by the fetcher's hash)."""
        path = self.path(digest)
        try:
            with open(path, "rb") as f:
                total = os.fstat(f.fileno()).st_size
                f.seek(offset)
                return f.read(length), total
        except FileNotFoundError:
            return None

    def _evict(self) -> None:
        """Oldest unpinned blobs first, until under the cap (a scan only when over it)."""
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.glob("*/*") if ".tmp" not in p.name]
        total = sum(s for _, s, _ in files)
        for _, size, p in sorted(files):
            if total <= self.cap:
                break
            if bytes.fromhex(p.name) in self.pinned:
                continue
            p.unlink(missing_ok=True)
            total -= size
        self.total = total

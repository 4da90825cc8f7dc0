"""A daemon's claim on its data directory: one daemon per directory, owner-only files, and a
failed start that leaves nothing behind.

- **One daemon.** ``daemon.lock`` in the directory is held with ``flock`` for the life of the
  process (the kernel drops it when the process dies, even by SIGKILL, so a crash never leaves
  a stale lock). A second daemon on the same directory is refused in one line naming the pid
  that holds it. (A *copy* of the directory is another file, so another lock: that case is
  caught on the network, ``daemon.duplicate``.)
- **Owner-only.** The directory holds the node's secret key, its database and its control
  socket. It is made 0700 and every directory under it 0700, every file 0600, whatever modes
  they had; the process's umask becomes 077 so files made later are owner-only too. The key
  file is the exception: one found readable by others is refused, not silently fixed
  (``daemon.storage.keyfile``), because it may have been read already.
- **A failed start leaves nothing.** If the daemon stops before it was ever up (a port taken,
  a bad genesis), the genesis file it founded and its control socket are removed again, so the
  next start does not found a different network by accident or meet a stale socket.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.errors import DaemonError

LOCK_FILE_NAME = "daemon.lock"
KEY_FILE_NAME = "node.key"


class DataDirInUse(DaemonError):
    """Another daemon holds this data directory; the message says which and what to do."""


class DataDirLock:
    """``flock`` on ``DIR/daemon.lock``, with the holder's pid written in the file."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise DataDirInUse(
                f"another daemon (pid {holder}) is running on data directory {self.data_dir}; "
                "stop that daemon first, or give this one its own --data-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None


def tighten_modes(data_dir: Path) -> None:
    """Make ``data_dir`` and everything under it owner-only (symlinks are left alone)."""
    os.chmod(data_dir, 0o700)
    stack = [data_dir]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(Path(entry.path))
                        want = 0o700
                    elif stat.S_ISLNK(st.st_mode) or entry.name == KEY_FILE_NAME:
                        continue
                    else:
                        want = stat.S_IMODE(st.st_mode) & 0o700 | 0o600
                    if stat.S_IMODE(st.st_mode) != want:
                        os.chmod(entry.path, want, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # gone while we looked (a WAL file, a temp file)


class Claim:
    """What ``claim_data_dir`` yields: call ``started()`` once the node is up."""

    def __init__(self, made_on_failure: list[Path]) -> None:
        self._undo = made_on_failure
        self.up = False

    def started(self) -> None:
        self.up = True


@contextmanager
def claim_data_dir(data_dir: Path, genesis_path: Path, socket_path: Path) -> Iterator[Claim]:
    """Hold ``data_dir`` for this process; undo the start's leftovers if it never came up."""
    if data_dir.resolve() in (Path.home().resolve(), Path("/")):
        raise DataDirInUse(f"data directory {data_dir} would make {data_dir.resolve()} and "
                           "everything in it owner-only; give NovaCron a directory of its own "
                           "with --data-dir")
    os.umask(0o077)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock = DataDirLock(data_dir)
    lock.acquire()
    undo = [socket_path]
    if not genesis_path.exists() and genesis_path.parent == data_dir:
        undo.append(genesis_path)  # founded by this start, if it happens
    claim = Claim(undo)
    try:
        tighten_modes(data_dir)
        yield claim
    finally:
        if not claim.up:
            for path in claim._undo:
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
        lock.release()

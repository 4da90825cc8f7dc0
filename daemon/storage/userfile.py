"""Reading a file a user named (a job's module or inputs, a config, a genesis, a CA file) with
its size bounded *before* the bytes are in memory.

``Path.read_bytes()`` on ``/dev/zero`` never returns, and on a FIFO it blocks until a writer
comes; checking a limit afterwards is too late. ``read_capped`` opens without blocking, refuses
anything but a regular file (devices, FIFOs, sockets, directories) from ``fstat``, refuses a
file whose size is over the cap, and then reads at most ``cap + 1`` bytes, so a file that grows
while we read is refused too. Every refusal is a ``UserFileError`` whose message is a short
phrase ("is a character device, not a regular file") for the caller to put after the name of
the setting or field that named the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from daemon.errors import DaemonError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


class UserFileError(DaemonError):
    """Why the file cannot be used, as a phrase: ``f"{field} names {path}, which {err}"``."""

    def __init__(self, phrase: str, *, missing: bool = False) -> None:
        super().__init__(phrase)
        self.missing = missing


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_capped(path: Path | str, cap: int) -> bytes:
    """The bytes of the regular file at ``path``, at most ``cap`` of them, else ``UserFileError``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UserFileError("does not exist", missing=True) from None
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket file, or a FIFO's other end
            raise UserFileError("is not a regular file") from None
        raise UserFileError(f"cannot be read: {err.strerror.lower() if err.strerror else err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserFileError(f"is {kind_of(st.st_mode)}, not a regular file")
        if st.st_size > cap:
            raise UserFileError(f"is {st.st_size:,} bytes; the limit is {cap:,}")
        chunks: list[bytes] = []
        got = 0
        while got <= cap:
            try:
                chunk = os.read(fd, min(1 << 20, cap + 1 - got))
            except OSError as err:
                raise UserFileError(f"cannot be read: {(err.strerror or str(err)).lower()}") from None
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > cap:
            raise UserFileError(f"grew past the limit of {cap:,} bytes while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_capped_text(path: Path | str, cap: int) -> str:
    """``read_capped`` decoded as UTF-8; a file that is not UTF-8 is a ``UserFileError``."""
    data = read_capped(path, cap)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserFileError(f"is not UTF-8 text (byte {err.start})") from None

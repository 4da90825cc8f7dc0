"""A small read-only view of the filesystem, so detection can run on this machine or a fake root.

Detection must tell the truth about *this* machine and must also be testable for machines we do
not have (a TPM with the wrong permissions, a confidential VM). Everything it looks at goes
through ``FsProbe``: paths are given as absolute paths of the real system ("/dev/tpmrm0") and
resolved under ``root``. Tests point ``root`` at a directory they built; the daemon uses "/".

Permissions are judged from the mode bits and the credentials given (default: this process),
not with ``os.access``, so a test running as root can still ask "what would uid 1000 see?".
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class PathInfo:
    """What ``stat`` says about one path; ``exists`` False means it is missing (or unreachable)."""

    exists: bool
    is_dir: bool = False
    is_char_device: bool = False
    mode: int = 0
    uid: int = -1
    gid: int = -1
    error: str = ""
    """Why ``stat`` failed when it failed for a reason other than the path not existing."""


class FsProbe:
    """Read-only filesystem queries under ``root``, judged with the given credentials."""

    def __init__(self, root: Path = Path("/"), *, uid: int | None = None,
                 gids: tuple[int, ...] | None = None, devices_may_be_files: bool = False) -> None:
        self.root = root
        self.uid = os.geteuid() if uid is None else uid
        self.gids = (os.getegid(), *os.getgroups()) if gids is None else gids
        # A fake root holds plain files where /dev has device nodes (creating device nodes needs
        # privileges a test should not need); only then is a regular file accepted as a device.
        self.devices_may_be_files = devices_may_be_files

    @property
    def is_real_root(self) -> bool:
        return self.root == Path("/")

    def path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def info(self, path: str) -> PathInfo:
        try:
            st = os.stat(self.path(path))
        except FileNotFoundError:
            return PathInfo(exists=False)
        except PermissionError:
            return PathInfo(exists=False, error="permission denied")
        except NotADirectoryError:
            return PathInfo(exists=False)
        except OSError as err:
            return PathInfo(exists=False, error=err.strerror or type(err).__name__)
        is_char = stat.S_ISCHR(st.st_mode) or (self.devices_may_be_files
                                                and stat.S_ISREG(st.st_mode))
        return PathInfo(exists=True, is_dir=stat.S_ISDIR(st.st_mode), is_char_device=is_char,
                        mode=st.st_mode, uid=st.st_uid, gid=st.st_gid)

    def exists(self, path: str) -> bool:
        return self.info(path).exists

    def may_read_write(self, info: PathInfo) -> bool:
        """Whether our credentials may open ``info``'s file for reading and writing."""
        return mode_allows(info, self.uid, self.gids, want=0o6)

    def may_read(self, info: PathInfo) -> bool:
        return mode_allows(info, self.uid, self.gids, want=0o4)

    def read_text(self, path: str, limit: int = 1 << 20) -> str | None:
        """The file's text (at most ``limit`` bytes), or None when it cannot be read."""
        try:
            with open(self.path(path), "rb") as f:
                return f.read(limit).decode("utf-8", "replace")
        except OSError:
            return None

    def read_bytes(self, path: str, limit: int) -> bytes:
        """The file's bytes; raises ``OSError`` (the caller turns it into a reason)."""
        with open(self.path(path), "rb") as f:
            return f.read(limit)

    def listdir(self, path: str) -> tuple[str, ...]:
        try:
            return tuple(sorted(os.listdir(self.path(path))))
        except OSError:
            return ()


def mode_allows(info: PathInfo, uid: int, gids: tuple[int, ...], *, want: int) -> bool:
    """POSIX permission check from mode bits (``want``: 4 read, 2 write, 6 both).

    Root may do anything, as the kernel allows (device nodes carry no capability checks of
    their own for open). ACLs are ignored: a TPM device with an ACL is reported as it would be
    by its mode, which errs toward "permission denied" and says so.
    """
    if uid == 0:
        return True
    perm = info.mode & 0o777
    if info.uid == uid:
        bits = (perm >> 6) & 7
    elif info.gid in gids:
        bits = (perm >> 3) & 7
    else:
        bits = perm & 7
    return bits & want == want

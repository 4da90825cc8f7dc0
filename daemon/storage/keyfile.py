"""Read and write the node key file: mode 0600 from the moment it exists, replaced atomically.

The format belongs to ``protocol.identity``; this module only does the file I/O around it.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.storage.userfile import UserFileError, read_capped
from daemon.errors import DaemonError
from protocol.errors import LocalProtocolError
from protocol.identity import NodeIdentity

KEY_FILE_NAME = "node.key"
MAX_KEY_FILE_BYTES = 4096


class KeyFileError(DaemonError):
    """The key file exists but cannot be used; the message says why and what to do."""


def save_identity(identity: NodeIdentity, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT honours umask; make the mode exact
        os.write(fd, identity.to_key_file())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def load_identity(path: Path) -> NodeIdentity:
    try:
        mode = path.stat().st_mode & 0o777
        data = read_capped(path, MAX_KEY_FILE_BYTES)
    except PermissionError:
        raise KeyFileError(f"cannot read key file {path}: permission denied") from None
    except UserFileError as err:
        if err.missing:
            raise FileNotFoundError(str(path)) from None
        raise KeyFileError(f"key file {path} {err}") from None
    if mode & 0o077:
        raise KeyFileError(
            f"key file {path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
        )
    try:
        return NodeIdentity.from_key_file(data)
    except LocalProtocolError as err:
        raise KeyFileError(f"{path}: {err}") from None


def load_or_create_identity(data_dir: Path) -> tuple[NodeIdentity, bool]:
    """The node's identity from ``data_dir/node.key``, creating it on first start.

    Returns ``(identity, created)``.
    """
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return load_identity(path), False
    identity = NodeIdentity.generate(os.urandom(32))
    save_identity(identity, path)
    return identity, True

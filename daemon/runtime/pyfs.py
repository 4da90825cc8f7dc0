"""A read-only file tree for one task: the interpreter's standard library and the job's files.

Why not the host's directories (wasmtime's preopens): replicas must see exactly the same world,
and a real directory leaks the host into the guest (modification times, inode numbers, the order
of directory listings, files someone else put there). This tree is built from bytes the task is
entitled to, and every answer about it is a function of those bytes only: every timestamp is 0,
inode numbers are positions in the sorted path list, listings are sorted by name.

Pure: no I/O. The file contents are any buffer (bytes, or an ``mmap`` of the stdlib zip shared
by every task of a worker).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from daemon.errors import DaemonError

MAX_DEPTH = 64
MAX_PATH = 4096


class FsError(DaemonError):
    """A lookup that failed; ``errno`` is the WASI errno to return."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


ENOENT = 44
ENOTDIR = 54
ENAMETOOLONG = 37
ENOTCAPABLE = 76


@dataclass(frozen=True, slots=True)
class Node:
    path: str  # absolute, normalised, "/" for the root
    inode: int
    data: object | None  # a buffer for a file, None for a directory
    children: tuple[str, ...] = ()  # sorted names, for a directory

    @property
    def is_dir(self) -> bool:
        return self.data is None

    @property
    def size(self) -> int:
        return 0 if self.data is None else len(self.data)  # type: ignore[arg-type]


@dataclass
class Tree:
    """Absolute path -> ``Node``; directories are implied by the files' paths."""

    nodes: dict[str, Node] = field(default_factory=dict)

    @classmethod
    def build(cls, files: Mapping[str, object]) -> Tree:
        """``files``: absolute path -> contents. Parent directories are created."""
        normal = {"/" + "/".join(split(path)): data for path, data in files.items()}
        dirs: dict[str, set[str]] = {"/": set()}
        for path in normal:
            parts = split(path)
            for depth in range(len(parts)):
                parent = "/" + "/".join(parts[:depth])
                dirs.setdefault(parent, set()).add(parts[depth])
        nodes = {}
        for inode, path in enumerate(sorted(set(dirs) | set(normal)), start=1):
            if path in dirs:
                nodes[path] = Node(path, inode, None, tuple(sorted(dirs[path])))
            else:
                nodes[path] = Node(path, inode, normal[path])
        return cls(nodes)

    def lookup(self, base: str, relative: str) -> Node:
        """The node at ``relative`` from the directory ``base``. ".." never leaves the root."""
        if len(relative) > MAX_PATH:
            raise FsError(ENAMETOOLONG)
        parts = split(base) if not relative.startswith("/") else []
        for part in relative.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise FsError(ENOTCAPABLE)
                parts.pop()
                continue
            here = self.nodes.get("/" + "/".join(parts))
            if here is None:
                raise FsError(ENOENT)
            if not here.is_dir:
                raise FsError(ENOTDIR)
            parts.append(part)
            if len(parts) > MAX_DEPTH:
                raise FsError(ENAMETOOLONG)
        node = self.nodes.get("/" + "/".join(parts))
        if node is None:
            raise FsError(ENOENT)
        return node


def split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]

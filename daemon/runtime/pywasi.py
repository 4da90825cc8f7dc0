"""The WASI world of a Python task: the deterministic subset of ``wasi`` plus read-only files.

Everything the C runtime guarantees holds (stdin, stdout, a capped stderr tail, argv, no
environment, the logical clock, virtual sleep, seeded randomness, no sockets, fuel for host
work); on top of it the interpreter sees one preopened directory, "/", holding a ``pyfs.Tree``:
its standard library at ``/usr/local/lib/python315.zip`` and the job's files under ``/job``.

- ``path_open`` opens files and directories of the tree for reading. Asking to create, truncate
  or append, or for any write right, is ``EROFS``: Python raises ``OSError: [Errno 69]
  Read-only file system``. A name outside the tree is ``ENOENT``.
- ``fd_read``/``fd_pread``/``fd_seek``/``fd_tell``/``fd_readdir``/``*_filestat_get`` answer
  from the tree; every timestamp is 0, so nothing about the host leaks in.
- Every other ``path_*`` call is ``EROFS``; ``path_readlink`` says "not a link".
- ``host.call``, an extra import of this interpreter build (its own tool door), answers
  "no host" (-1).

At most ``MAX_OPEN`` files are open at once (``EMFILE`` beyond). Bytes read from files are
charged as fuel, one unit a byte, like stdin.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable

from daemon.runtime.abi import EBADF, EFAULT, EINVAL, ESUCCESS, I32
from daemon.runtime.pyfs import FsError, Node, Tree
from daemon.runtime.wasi import WasiSubset, _Fault

EISDIR = 31
EMFILE = 33
ENOTDIR = 54
EROFS = 69
ESPIPE = 70
EOVERFLOW = 61
FILETYPE_DIRECTORY = 3
FILETYPE_REGULAR = 4
OFLAG_CREAT, OFLAG_DIRECTORY, OFLAG_EXCL, OFLAG_TRUNC = 1, 2, 4, 8
FDFLAG_APPEND = 1
# What wasi-libc adds to an open's rights for O_WRONLY/O_RDWR (and only then): its O_RDONLY
# request is "everything the directory passes on except these", so only these mean "write".
OPEN_WRITE_RIGHTS = (1 << 0) | (1 << 6) | (1 << 8) | (1 << 22)
WRITE_RIGHTS = (1 << 0) | (1 << 4) | (1 << 6) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 12) \
    | (1 << 17) | (1 << 19) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 24) | (1 << 25) | (1 << 26)
ALL_RIGHTS = (1 << 30) - 1
READ_RIGHTS = ALL_RIGHTS & ~WRITE_RIGHTS
PREOPEN_FD = 3
MAX_OPEN = 128
HOST_NO_HOST = -1


@dataclass
class OpenFile:
    node: Node
    position: int = 0


class PythonWasi(WasiSubset):
    """``WasiSubset`` plus the read-only tree. Set ``tree`` and call ``reset_files`` per task."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = Tree.build({})
        self.files: dict[int, OpenFile] = {}

    def reset_files(self, tree: Tree) -> None:
        self.tree = tree
        self.files = {PREOPEN_FD: OpenFile(tree.nodes["/"])}

    def handlers(self) -> dict[str, Callable[..., Any]]:
        own = super().handlers()
        own.update({
            "fd_prestat_get": self.fd_prestat_get, "fd_prestat_dir_name": self.fd_prestat_dir_name,
            "fd_read": self.fd_read_any, "fd_pread": self.fd_pread, "fd_seek": self.fd_seek,
            "fd_tell": self.fd_tell, "fd_close": self.fd_close_any,
            "fd_fdstat_get": self.fd_fdstat_get_any, "fd_filestat_get": self.fd_filestat_get,
            "fd_readdir": self.fd_readdir, "path_open": self.path_open,
            "path_filestat_get": self.path_filestat_get, "path_readlink": self.path_readlink,
            "fd_advise": self.fd_ok_if_open,
        })
        for name in ("path_create_directory", "path_filestat_set_times", "path_link",
                     "path_remove_directory", "path_rename", "path_symlink",
                     "path_unlink_file"):
            own[name] = self.read_only
        return own

    def define(self, linker: Any) -> None:
        super().define(linker)
        self.define_one(linker, "host", "call", ((I32, I32, I32, I32), (I32,)),
                        lambda caller, *args: HOST_NO_HOST)

    # -- helpers ---------------------------------------------------------------------------------

    def _open(self, fd: int) -> OpenFile | None:
        return self.files.get(fd)

    def _path(self, mem: memoryview, ptr: int, length: int) -> str:
        raw = bytes(self._span(mem, ptr, length))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FsError(44) from None

    def _filestat(self, mem: memoryview, ptr: int, node: Node | None) -> None:
        if node is None:  # stdin, stdout, stderr: streams of unknown type, nothing to say
            self._put(mem, "<QQBxxxxxxxQQQQQ", ptr, 0, 0, 0, 1, 0, 0, 0, 0)
            return
        kind = FILETYPE_DIRECTORY if node.is_dir else FILETYPE_REGULAR
        self._put(mem, "<QQBxxxxxxxQQQQQ", ptr, 1, node.inode, kind, 1, node.size, 0, 0, 0)

    def read_only(self, caller: Any, *_args: int) -> int:
        return EROFS

    def fd_ok_if_open(self, caller: Any, fd: int, *_args: int) -> int:
        return ESUCCESS if fd in self.files or 0 <= fd <= 2 else EBADF

    # -- preopens --------------------------------------------------------------------------------

    def fd_prestat_get(self, caller: Any, fd: int, ptr: int) -> int:
        if fd != PREOPEN_FD or fd not in self.files:
            return EBADF
        try:
            _, mem = self._view(caller)
            self._put(mem, "<BxxxI", ptr, 0, 1)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def fd_prestat_dir_name(self, caller: Any, fd: int, ptr: int, length: int) -> int:
        if fd != PREOPEN_FD or fd not in self.files:
            return EBADF
        try:
            _, mem = self._view(caller)
            self._span(mem, ptr, min(length, 1))[:] = b"/"[:length]
        except _Fault:
            return EFAULT
        return ESUCCESS

    # -- descriptors -----------------------------------------------------------------------------

    def fd_read_any(self, caller: Any, fd: int, iovs: int, count: int, nread_ptr: int) -> int:
        handle = self._open(fd)
        if handle is None:
            return self.fd_read(caller, fd, iovs, count, nread_ptr)
        return self._read(caller, handle, iovs, count, nread_ptr, None)

    def fd_pread(self, caller: Any, fd: int, iovs: int, count: int, offset: int,
                 nread_ptr: int) -> int:
        handle = self._open(fd)
        if handle is None:
            return ESPIPE if 0 <= fd <= 2 else EBADF
        if offset < 0:
            return EINVAL
        return self._read(caller, handle, iovs, count, nread_ptr, offset)

    def _read(self, caller: Any, handle: OpenFile, iovs: int, count: int, nread_ptr: int,
              offset: int | None) -> int:
        if handle.node.is_dir:
            return EISDIR
        data: Any = handle.node.data
        try:
            io, mem = self._view(caller)
            pos = handle.position if offset is None else offset
            total = 0
            for target in self._iovecs(mem, iovs, count):
                chunk = data[pos:pos + len(target)]
                target[:len(chunk)] = chunk
                pos += len(chunk)
                total += len(chunk)
                if len(chunk) < len(target):
                    break
            io.host_bytes += total
            if offset is None:
                handle.position = pos
            self._put(mem, "<I", nread_ptr, total)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def fd_seek(self, caller: Any, fd: int, offset: int, whence: int, result_ptr: int) -> int:
        handle = self._open(fd)
        if handle is None:
            return ESPIPE if 0 <= fd <= 2 else EBADF
        if handle.node.is_dir:
            return EISDIR
        base = {0: 0, 1: handle.position, 2: handle.node.size}.get(whence)
        if base is None:
            return EINVAL
        offset = offset - (1 << 64) if offset >= 1 << 63 else offset
        target = base + offset
        if target < 0:
            return EINVAL
        if target >= 1 << 63:
            return EOVERFLOW
        try:
            _, mem = self._view(caller)
            self._put(mem, "<Q", result_ptr, target)
        except _Fault:
            return EFAULT
        handle.position = target
        return ESUCCESS

    def fd_tell(self, caller: Any, fd: int, result_ptr: int) -> int:
        handle = self._open(fd)
        if handle is None:
            return ESPIPE if 0 <= fd <= 2 else EBADF
        try:
            _, mem = self._view(caller)
            self._put(mem, "<Q", result_ptr, handle.position)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def fd_close_any(self, caller: Any, fd: int) -> int:
        if self.files.pop(fd, None) is not None:
            return ESUCCESS
        return self.fd_close(caller, fd)

    def fd_fdstat_get_any(self, caller: Any, fd: int, ptr: int) -> int:
        handle = self._open(fd)
        if handle is None:
            return self.fd_fdstat_get(caller, fd, ptr)
        dirs = handle.node.is_dir
        try:
            _, mem = self._view(caller)
            # Directories pass on every right so that a request for a write right arrives at
            # path_open, which answers EROFS, instead of being silently masked away by libc.
            self._put(mem, "<BxHxxxxQQ", ptr, FILETYPE_DIRECTORY if dirs else FILETYPE_REGULAR,
                      0, READ_RIGHTS, ALL_RIGHTS if dirs else 0)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def fd_filestat_get(self, caller: Any, fd: int, ptr: int) -> int:
        handle = self._open(fd)
        if handle is None and not 0 <= fd <= 2:
            return EBADF
        try:
            _, mem = self._view(caller)
            self._filestat(mem, ptr, handle.node if handle else None)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def fd_readdir(self, caller: Any, fd: int, buf: int, length: int, cookie: int,
                   used_ptr: int) -> int:
        handle = self._open(fd)
        if handle is None:
            return EBADF
        node = handle.node
        if not node.is_dir:
            return ENOTDIR
        try:
            io, mem = self._view(caller)
            target = self._span(mem, buf, length)
            entries = [(".", node), ("..", node)] + [
                (name, self.tree.lookup(node.path, name)) for name in node.children]
            out = bytearray()
            for index in range(max(0, cookie), len(entries)):
                name, child = entries[index]
                encoded = name.encode()
                kind = FILETYPE_DIRECTORY if child.is_dir else FILETYPE_REGULAR
                out += struct.pack("<QQIBxxx", index + 1, child.inode, len(encoded), kind) + encoded
                if len(out) >= length:
                    break
            written = min(len(out), length)
            target[:written] = out[:written]
            io.host_bytes += written
            self._put(mem, "<I", used_ptr, written)
        except _Fault:
            return EFAULT
        return ESUCCESS

    # -- paths -----------------------------------------------------------------------------------

    def _resolve(self, mem: memoryview, fd: int, ptr: int, length: int) -> Node:
        handle = self._open(fd)
        if handle is None:
            raise FsError(EBADF)
        if not handle.node.is_dir:
            raise FsError(ENOTDIR)
        return self.tree.lookup(handle.node.path, self._path(mem, ptr, length))

    def path_open(self, caller: Any, fd: int, _dirflags: int, path: int, path_len: int,
                  oflags: int, rights: int, _inheriting: int, fdflags: int,
                  fd_ptr: int) -> int:
        try:
            _, mem = self._view(caller)
            if oflags & (OFLAG_CREAT | OFLAG_EXCL | OFLAG_TRUNC) or fdflags & FDFLAG_APPEND \
                    or rights & OPEN_WRITE_RIGHTS:
                return EROFS
            node = self._resolve(mem, fd, path, path_len)
            if oflags & OFLAG_DIRECTORY and not node.is_dir:
                return ENOTDIR
            if len(self.files) >= MAX_OPEN:
                return EMFILE
            new = next(n for n in range(PREOPEN_FD + 1, PREOPEN_FD + 2 + MAX_OPEN)
                       if n not in self.files)
            self._put(mem, "<I", fd_ptr, new)
            self.files[new] = OpenFile(node)
        except FsError as err:
            return err.errno
        except _Fault:
            return EFAULT
        return ESUCCESS

    def path_filestat_get(self, caller: Any, fd: int, _flags: int, path: int, path_len: int,
                          ptr: int) -> int:
        try:
            _, mem = self._view(caller)
            self._filestat(mem, ptr, self._resolve(mem, fd, path, path_len))
        except FsError as err:
            return err.errno
        except _Fault:
            return EFAULT
        return ESUCCESS

    def path_readlink(self, caller: Any, fd: int, path: int, path_len: int, *_rest: int) -> int:
        try:
            _, mem = self._view(caller)
            self._resolve(mem, fd, path, path_len)
        except FsError as err:
            return err.errno
        except _Fault:
            return EFAULT
        return EINVAL  # it exists, and nothing in the tree is a link

"""The WASI preview1 ABI as NovaCron uses it: function names and types, errno values, and the
check that refuses a module importing anything else.

The table is the whole of ``wasi_snapshot_preview1`` as wasi-libc's ``wasi/api.h`` declares it,
so any wasi-libc program links (its unused file and socket paths included); ``wasi`` decides
what each function does.
"""

from __future__ import annotations

import wasmtime

MODULE = "wasi_snapshot_preview1"

ESUCCESS = 0
EBADF = 8
EFAULT = 21
EINVAL = 28
ENOSYS = 52
ENOTSUP = 58
ESPIPE = 70
ENOTCAPABLE = 76

FILETYPE_UNKNOWN = 0
RIGHTS_FD_READ = 1 << 1
RIGHTS_FD_WRITE = 1 << 6
CLOCK_REALTIME = 0
CLOCK_RESOLUTION_NS = 1_000
STDERR_TAIL = 64 * 1024
"""The last bytes of a task's stderr that are kept: deterministic (the same on every replica),
so replicas agree on them and the submitter's `novacron logs` shows them."""
MAX_IOVECS = 1024

I32 = "i32"
I64 = "i64"
# name -> (params, results): the whole of wasi_snapshot_preview1, as in wasi-libc's api.h.
SIGNATURES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "args_get": ((I32, I32), (I32,)),
    "args_sizes_get": ((I32, I32), (I32,)),
    "environ_get": ((I32, I32), (I32,)),
    "environ_sizes_get": ((I32, I32), (I32,)),
    "clock_res_get": ((I32, I32), (I32,)),
    "clock_time_get": ((I32, I64, I32), (I32,)),
    "fd_advise": ((I32, I64, I64, I32), (I32,)),
    "fd_allocate": ((I32, I64, I64), (I32,)),
    "fd_close": ((I32,), (I32,)),
    "fd_datasync": ((I32,), (I32,)),
    "fd_fdstat_get": ((I32, I32), (I32,)),
    "fd_fdstat_set_flags": ((I32, I32), (I32,)),
    "fd_fdstat_set_rights": ((I32, I64, I64), (I32,)),
    "fd_filestat_get": ((I32, I32), (I32,)),
    "fd_filestat_set_size": ((I32, I64), (I32,)),
    "fd_filestat_set_times": ((I32, I64, I64, I32), (I32,)),
    "fd_pread": ((I32, I32, I32, I64, I32), (I32,)),
    "fd_prestat_get": ((I32, I32), (I32,)),
    "fd_prestat_dir_name": ((I32, I32, I32), (I32,)),
    "fd_pwrite": ((I32, I32, I32, I64, I32), (I32,)),
    "fd_read": ((I32, I32, I32, I32), (I32,)),
    "fd_readdir": ((I32, I32, I32, I64, I32), (I32,)),
    "fd_renumber": ((I32, I32), (I32,)),
    "fd_seek": ((I32, I64, I32, I32), (I32,)),
    "fd_sync": ((I32,), (I32,)),
    "fd_tell": ((I32, I32), (I32,)),
    "fd_write": ((I32, I32, I32, I32), (I32,)),
    "path_create_directory": ((I32, I32, I32), (I32,)),
    "path_filestat_get": ((I32, I32, I32, I32, I32), (I32,)),
    "path_filestat_set_times": ((I32, I32, I32, I32, I64, I64, I32), (I32,)),
    "path_link": ((I32, I32, I32, I32, I32, I32, I32), (I32,)),
    "path_open": ((I32, I32, I32, I32, I32, I64, I64, I32, I32), (I32,)),
    "path_readlink": ((I32, I32, I32, I32, I32, I32), (I32,)),
    "path_remove_directory": ((I32, I32, I32), (I32,)),
    "path_rename": ((I32, I32, I32, I32, I32, I32), (I32,)),
    "path_symlink": ((I32, I32, I32, I32, I32), (I32,)),
    "path_unlink_file": ((I32, I32, I32), (I32,)),
    "poll_oneoff": ((I32, I32, I32, I32), (I32,)),
    "proc_exit": ((I32,), ()),
    "proc_raise": ((I32,), (I32,)),
    "sched_yield": ((), (I32,)),
    "random_get": ((I32, I32), (I32,)),
    "sock_accept": ((I32, I32, I32), (I32,)),
    "sock_recv": ((I32, I32, I32, I32, I32, I32), (I32,)),
    "sock_send": ((I32, I32, I32, I32, I32), (I32,)),
    "sock_shutdown": ((I32, I32), (I32,)),
}



def check_imports(module: wasmtime.Module) -> str | None:
    """None if every import is a preview1 function with its exact type, else a one-line reason."""
    for imp in module.imports:
        where = f"{imp.module}.{imp.name}"
        if imp.module != MODULE:
            return (f"module imports {where}: only {MODULE} functions are available "
                    "(no host functions, no imported memory)")
        sig = SIGNATURES.get(imp.name or "")
        ty = imp.type
        if sig is None or not isinstance(ty, wasmtime.FuncType):
            return f"module imports {where}, which is not a WASI preview1 function"
        got = (tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results))
        if got != sig:
            return f"module imports {where} with type {got}, expected {sig}"
    return None

"""A deterministic WASI preview1 subset: everything a task can observe, nothing of the host.

Why not wasmtime's own WASI: each task runs on two or more volunteers and its result counts only
if their digests match, so a module must see exactly the same world on every machine. Real WASI
hands it the host's clocks, entropy, environment and preopened directories; this module gives
it instead:

- ``fd_read(0)``: the task's input bytes, then end of file. ``fd_write(1)``: the output buffer,
  capped at ``max_output`` bytes (beyond it the task ends with OUTPUT_TOO_LARGE).
  ``fd_write(2)``: the last ``STDERR_TAIL`` bytes of stderr, deterministic like the output
  (replicas agree on them; the researcher reads them with ``novacron logs``).
- ``args_*``: the job's argv. ``environ_*``: empty.
- ``clock_*``: a logical clock. REALTIME starts at the job's ``logical_time_ns``; MONOTONIC and
  the CPU-time clocks start at 0. Each reading advances the clock by 1 microsecond (its
  resolution), so timing loops end and "elapsed" is never zero, identically everywhere.
  ``poll_oneoff`` on a clock (``sleep``) advances the logical clock instead of sleeping, by the
  relative timeout, or up to an absolute one (``clock_nanosleep(TIMER_ABSTIME)``, which is
  how CPython sleeps).
- ``random_get``: the stream SHAKE-256(seed || counter as 8 little-endian bytes), first 4096
  bytes, for counter = 0, 1, 2, ... concatenated. Replicas of one task get one seed, so the
  same bytes. (SHAKE in 4 KiB blocks: ~5x faster in Python than 64-byte BLAKE2b blocks.)
- ``proc_exit``: ends the task with the exit code.
- Files and sockets: there are none. fds 0-2 exist (not seekable, not ttys, so stdio buffers
  fully); every other fd is EBADF; no fd is a preopened directory, so wasi-libc's ``fopen``
  fails with ENOENT-like errors before it ever calls ``path_open``; ``path_*`` and ``sock_*``
  return ENOTCAPABLE / ENOTSUP.

Every preview1 function is defined with its exact signature, so a module built against wasi-libc
links whatever stdio paths it contains (the table is in ``abi``); any import outside it is
refused by ``abi.check_imports`` before the module ever runs.

Host work is metered: each call costs ``HOST_CALL_FUEL`` plus one unit per byte it moves (more
for random bytes and poll subscriptions), taken from the task's fuel. The prices are set so a
unit of fuel buys at most about as much host time as it buys compiled wasm time (~0.4 ns). Without that, a module could loop on large ``random_get`` or
``poll_oneoff`` calls, burning host time but almost no fuel, and end TIMED_OUT on a slow
volunteer but OK on a fast one; with it, fuel bounds all the work deterministically.

The functions are defined once per Linker (store-independent) and find the running task through
``WasiSubset.io``: a worker process runs one task at a time.
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from dataclasses import dataclass, field
from typing import Any, Callable

import wasmtime
from wasmtime import _ffi as ffi

from daemon.errors import DaemonError
from daemon.runtime.abi import (CLOCK_REALTIME, CLOCK_RESOLUTION_NS, EBADF, EFAULT, EINVAL,
                                ENOSYS, ENOTCAPABLE, ENOTSUP, ESPIPE, ESUCCESS, FILETYPE_UNKNOWN,
                                MAX_IOVECS, MODULE, RIGHTS_FD_READ, RIGHTS_FD_WRITE, SIGNATURES,
                                STDERR_TAIL, I32, I64)

_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
HOST_CALL_FUEL = 10_000  # fuel charged per host call (~4 us of wasm), plus per byte moved
RANDOM_FUEL_PER_BYTE = 8  # SHAKE-256 in Python: ~4 ns a byte
POLL_FUEL_PER_SUBSCRIPTION = 5_000
RANDOM_BLOCK = 4096

class Stop(DaemonError):
    """Ends the module from a host function: the sandbox turns it into the task's ending."""


class ProcExit(Stop):
    """``proc_exit`` was called; carries the exit code (as a signed 32-bit number)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class OutputTooLarge(Stop):
    """``fd_write(1)`` would pass ``max_output``."""


class HostOutOfFuel(Stop):
    """A host call cost more fuel than the task had left."""


class _Fault(DaemonError):
    """A pointer from the module points outside its memory: the call returns EFAULT."""


@dataclass
class TaskIO:
    """One task's world: what the module reads, what it wrote, and the logical clock."""

    stdin: bytes
    argv: tuple[bytes, ...]
    seed: bytes
    logical_time_ns: int
    max_output: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stdin_pos: int = 0
    clock_ticks: int = 0
    extra_ns: int = 0
    random_counter: int = 0
    random_spare: bytes = b""
    memory: Any = None  # the module's exported memory (a raw wasmtime_memory_t), found lazily
    host_bytes: int = 0  # fuel owed for the current host call's work, charged after it
    stop: BaseException | None = None  # why a host function ended the module, if one did

    def random_bytes(self, n: int) -> bytes:
        """The next ``n`` bytes of the seeded stream (see the module docstring)."""
        out = bytearray(self.random_spare[:n])
        self.random_spare = self.random_spare[n:]
        while len(out) < n:
            counter = self.random_counter.to_bytes(8, "little")
            block = hashlib.shake_256(self.seed + counter).digest(RANDOM_BLOCK)
            self.random_counter += 1
            take = n - len(out)
            out += block[:take]
            self.random_spare = block[take:]
        return bytes(out)

    def peek_clock(self, clock_id: int) -> int:
        """What ``clock_id`` reads now, without advancing it."""
        elapsed = self.clock_ticks * CLOCK_RESOLUTION_NS + self.extra_ns
        return self.logical_time_ns + elapsed if clock_id == CLOCK_REALTIME else elapsed

    def read_clock(self, clock_id: int) -> int:
        """Advance the logical clock one tick and read ``clock_id`` (nanoseconds)."""
        self.clock_ticks += 1
        elapsed = self.clock_ticks * CLOCK_RESOLUTION_NS + self.extra_ns
        return self.logical_time_ns + elapsed if clock_id == CLOCK_REALTIME else elapsed


def _errno(value: int) -> Callable[..., int]:
    def refuse(*_args: Any) -> int:
        return value
    return refuse


class WasiSubset:
    """The host side of the subset. ``define(linker)`` once; set ``io`` for each task.

    Speed: wasmtime-py's ``Linker.define_func`` converts every argument and result through
    ``Val`` objects, ~15 microseconds per host call, which would be most of a small task's start.
    We register the functions with wasmtime's "unchecked" C entry point instead: the callback
    reads raw i32/i64 slots and writes the result in place (a few microseconds). To end the
    module a callback records the reason in ``io.stop`` and returns a trap; the sandbox reads
    ``io.stop`` first. This uses ``wasmtime._ffi`` (the bindings wasmtime-py itself is built on).
    """

    def __init__(self) -> None:
        self.io: TaskIO | None = None
        self.metered = True  # False only for an engine without fuel (benchmarks)
        self._keep: list[Any] = []  # ctypes callbacks must outlive the linker

    def handlers(self) -> dict[str, Callable[..., Any]]:
        """preview1 name -> handler; the rest get an errno by family (see ``define``)."""
        return {
            "args_get": self.args_get, "args_sizes_get": self.args_sizes_get,
            "environ_get": self.environ_get, "environ_sizes_get": self.environ_sizes_get,
            "clock_res_get": self.clock_res_get, "clock_time_get": self.clock_time_get,
            "fd_close": self.fd_close, "fd_fdstat_get": self.fd_fdstat_get,
            "fd_fdstat_set_flags": self.fd_std_unsupported, "fd_prestat_get": self.fd_bad,
            "fd_prestat_dir_name": self.fd_bad, "fd_read": self.fd_read, "fd_write": self.fd_write,
            "fd_seek": self.fd_not_seekable, "fd_tell": self.fd_not_seekable,
            "poll_oneoff": self.poll_oneoff, "proc_exit": self.proc_exit,
            "random_get": self.random_get, "sched_yield": _errno(ESUCCESS),
        }

    def define(self, linker: wasmtime.Linker) -> None:
        own = self.handlers()
        for name in SIGNATURES:
            if name in own:
                handler = own[name]
            elif name.startswith("fd_"):
                handler = self.fd_std_unsupported
            elif name.startswith("sock_"):
                handler = _errno(ENOTSUP)
            elif name.startswith("path_"):
                handler = _errno(ENOTCAPABLE)
            else:
                handler = _errno(ENOSYS)
            self.define_one(linker, MODULE, name, SIGNATURES[name], handler)

    def define_one(self, linker: wasmtime.Linker, module_name: str, name: str,
                   signature: tuple[tuple[str, ...], tuple[str, ...]],
                   handler: Callable[..., Any]) -> None:
        """Register ``handler`` as ``module_name.name`` through the unchecked entry point."""
        valtype = {I32: wasmtime.ValType.i32(), I64: wasmtime.ValType.i64()}
        module = module_name.encode()
        params, results = signature
        ty = wasmtime.FuncType([valtype[p] for p in params], [valtype[r] for r in results])
        callback = ffi.wasmtime_func_unchecked_callback_t(self._callback(handler, params, results))
        self._keep += [callback, ty]
        error = ffi.wasmtime_linker_define_func_unchecked(
            linker.ptr(), module, len(module), name.encode(), len(name), ty.ptr(), callback,
            None, _NO_FINALIZER)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)

    def _callback(self, handler: Callable[..., Any], params: tuple[str, ...],
                  results: tuple[str, ...]) -> Callable[..., int]:
        """The raw C callback around ``handler(caller, *args)``: i32 arguments arrive unsigned."""
        kinds = tuple(p == I64 for p in params)
        returns = bool(results)

        def callback(_env: Any, caller: Any, raw: Any, _n: int) -> int:
            try:
                args = [raw[i].i64 if wide else raw[i].i32 & 0xFFFFFFFF
                        for i, wide in enumerate(kinds)]
                result = handler(caller, *args)
                if returns:
                    raw[0].i32 = result
                self._charge(caller)
                return 0
            except BaseException as err:  # noqa: BLE001 - becomes the task's ending (or our bug)
                if self.io is not None:
                    self.io.stop = err
                message = type(err).__name__.encode()
                trap = ffi.wasmtime_trap_new(message, len(message))
                return ctypes.cast(trap, ctypes.c_void_p).value or 0

        return callback

    def _charge(self, caller: Any) -> None:
        """Take this call's fuel from the task; out of fuel ends it like a wasm instruction would."""
        io = self.io
        assert io is not None
        cost = HOST_CALL_FUEL + io.host_bytes
        io.host_bytes = 0
        if not self.metered:
            return
        context = ffi.wasmtime_caller_context(caller)
        left = ctypes.c_uint64(0)
        error = ffi.wasmtime_context_get_fuel(context, ctypes.byref(left))
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if left.value < cost:
            ffi.wasmtime_context_set_fuel(context, 0)
            raise HostOutOfFuel()
        ffi.wasmtime_context_set_fuel(context, left.value - cost)

    # -- memory access ---------------------------------------------------------------------------

    def _view(self, caller: Any) -> tuple[TaskIO, memoryview]:
        io = self.io
        assert io is not None, "a WASI call outside a task"
        if io.memory is None:
            item = ffi.wasmtime_extern_t()
            found = ffi.wasmtime_caller_export_get(caller, b"memory", 6, ctypes.byref(item))
            if not found or int(item.kind) != ffi.WASMTIME_EXTERN_MEMORY.value:
                raise _Fault()
            io.memory = item.of.memory
        context = ffi.wasmtime_caller_context(caller)
        size = ffi.wasmtime_memory_data_size(context, ctypes.byref(io.memory))
        if size == 0:  # a zero-page memory has no valid base address
            return io, memoryview(b"")
        base = ctypes.addressof(ffi.wasmtime_memory_data(context, ctypes.byref(io.memory)).contents)
        return io, memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")

    @staticmethod
    def _span(mem: memoryview, ptr: int, length: int) -> memoryview:
        if ptr < 0 or length < 0 or ptr + length > len(mem):
            raise _Fault()
        return mem[ptr:ptr + length]

    def _iovecs(self, mem: memoryview, iovs: int, count: int) -> list[memoryview]:
        if count > MAX_IOVECS:
            raise _Fault()
        table = self._span(mem, iovs, 8 * count)
        out = []
        for i in range(count):
            ptr, length = struct.unpack_from("<II", table, 8 * i)
            out.append(self._span(mem, ptr, length))
        return out

    @staticmethod
    def _put(mem: memoryview, fmt: str, ptr: int, *values: int) -> None:
        if ptr < 0 or ptr + struct.calcsize(fmt) > len(mem):
            raise _Fault()
        struct.pack_into(fmt, mem, ptr, *values)

    # -- args, environ, clocks, random -----------------------------------------------------------

    def _strings_sizes(self, caller: Any, items: tuple[bytes, ...], count_ptr: int,
                       size_ptr: int) -> int:
        try:
            _, mem = self._view(caller)
            self._put(mem, "<I", count_ptr, len(items))
            self._put(mem, "<I", size_ptr, sum(len(s) + 1 for s in items))
        except _Fault:
            return EFAULT
        return ESUCCESS

    def _strings_get(self, caller: Any, items: tuple[bytes, ...], ptrs: int,
                     buf: int) -> int:
        try:
            io, mem = self._view(caller)
            io.host_bytes += sum(len(s) + 5 for s in items)
            for i, s in enumerate(items):
                self._put(mem, "<I", ptrs + 4 * i, buf)
                self._span(mem, buf, len(s) + 1)[:] = s + b"\0"
                buf += len(s) + 1
        except _Fault:
            return EFAULT
        return ESUCCESS

    def args_sizes_get(self, caller: Any, count_ptr: int, size_ptr: int) -> int:
        assert self.io is not None
        return self._strings_sizes(caller, self.io.argv, count_ptr, size_ptr)

    def args_get(self, caller: Any, ptrs: int, buf: int) -> int:
        assert self.io is not None
        return self._strings_get(caller, self.io.argv, ptrs, buf)

    def environ_sizes_get(self, caller: Any, count_ptr: int, size_ptr: int) -> int:
        return self._strings_sizes(caller, (), count_ptr, size_ptr)

    def environ_get(self, caller: Any, ptrs: int, buf: int) -> int:
        return ESUCCESS

    def clock_res_get(self, caller: Any, clock_id: int, res_ptr: int) -> int:
        if not 0 <= clock_id <= 3:
            return EINVAL
        try:
            _, mem = self._view(caller)
            self._put(mem, "<Q", res_ptr, CLOCK_RESOLUTION_NS)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def clock_time_get(self, caller: Any, clock_id: int, _precision: int,
                       time_ptr: int) -> int:
        if not 0 <= clock_id <= 3:
            return EINVAL
        try:
            io, mem = self._view(caller)
            self._put(mem, "<Q", time_ptr, io.read_clock(clock_id) & (2**64 - 1))
        except _Fault:
            return EFAULT
        return ESUCCESS

    def random_get(self, caller: Any, buf: int, length: int) -> int:
        try:
            io, mem = self._view(caller)
            target = self._span(mem, buf, length)
            io.host_bytes += RANDOM_FUEL_PER_BYTE * length
            target[:] = io.random_bytes(length)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def proc_exit(self, caller: Any, code: int) -> None:
        raise ProcExit(code - (1 << 32) if code >= 1 << 31 else code)

    # -- file descriptors ------------------------------------------------------------------------

    def fd_bad(self, caller: Any, *_args: int) -> int:
        return EBADF

    def fd_std_unsupported(self, caller: Any, fd: int, *_args: int) -> int:
        return ENOTSUP if 0 <= fd <= 2 else EBADF

    def fd_not_seekable(self, caller: Any, fd: int, *_args: int) -> int:
        return ESPIPE if 0 <= fd <= 2 else EBADF

    def fd_close(self, caller: Any, fd: int) -> int:
        return ESUCCESS if 0 <= fd <= 2 else EBADF

    def fd_fdstat_get(self, caller: Any, fd: int, stat_ptr: int) -> int:
        if not 0 <= fd <= 2:
            return EBADF
        rights = RIGHTS_FD_READ if fd == 0 else RIGHTS_FD_WRITE
        try:
            _, mem = self._view(caller)
            # fdstat: u8 filetype, u16 flags at 2, u64 rights_base at 8, u64 inheriting at 16.
            self._put(mem, "<BxHxxxxQQ", stat_ptr, FILETYPE_UNKNOWN, 0, rights, 0)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def fd_read(self, caller: Any, fd: int, iovs: int, count: int,
                nread_ptr: int) -> int:
        if fd != 0:
            return EBADF if fd > 2 or fd < 0 else ENOTSUP
        try:
            io, mem = self._view(caller)
            total = 0
            for target in self._iovecs(mem, iovs, count):
                chunk = io.stdin[io.stdin_pos:io.stdin_pos + len(target)]
                target[:len(chunk)] = chunk
                io.stdin_pos += len(chunk)
                io.host_bytes += len(chunk)
                total += len(chunk)
                if len(chunk) < len(target):
                    break
            self._put(mem, "<I", nread_ptr, total)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def fd_write(self, caller: Any, fd: int, iovs: int, count: int,
                 nwritten_ptr: int) -> int:
        if fd not in (1, 2):
            return EBADF if fd > 2 or fd < 0 else ENOTSUP
        try:
            io, mem = self._view(caller)
            views = self._iovecs(mem, iovs, count)
            total = sum(len(v) for v in views)
            io.host_bytes += total
            if fd == 1:
                room = io.max_output - len(io.stdout)
                for view in views:
                    io.stdout += view[:max(0, room)]
                    room -= len(view)
                if room < 0:
                    raise OutputTooLarge()
            else:  # keep only the tail: a module may write gigabytes of diagnostics
                for view in views:
                    io.stderr += view[-STDERR_TAIL:]
                    del io.stderr[:-STDERR_TAIL]
            self._put(mem, "<I", nwritten_ptr, total)
        except _Fault:
            return EFAULT
        return ESUCCESS

    def poll_oneoff(self, caller: Any, subs: int, events: int, count: int,
                    nevents_ptr: int) -> int:
        """Clock subscriptions fire at once and advance the logical clock; fds 0-2 are ready."""
        if count == 0:
            return EINVAL
        try:
            io, mem = self._view(caller)
            self._span(mem, subs, 48 * count)
            self._span(mem, events, 32 * count)
            io.host_bytes += POLL_FUEL_PER_SUBSCRIPTION * count
            advance = 0
            for i in range(count):
                userdata, tag = struct.unpack_from("<QB", mem, subs + 48 * i)
                error = ESUCCESS
                if tag == 0:  # clock: id u32 @16, timeout u64 @24, flags u16 @40
                    clock_id, timeout = struct.unpack_from("<IxxxxQ", mem, subs + 48 * i + 16)
                    (flags,) = struct.unpack_from("<H", mem, subs + 48 * i + 40)
                    if flags & 1:  # absolute (clock_nanosleep TIMER_ABSTIME): up to that time
                        timeout = max(0, timeout - io.peek_clock(clock_id))
                    advance = max(advance, timeout)
                elif tag in (1, 2):  # fd_read / fd_write: fd u32 @16
                    (fd,) = struct.unpack_from("<I", mem, subs + 48 * i + 16)
                    ok = (fd == 0) if tag == 1 else fd in (1, 2)
                    error = ESUCCESS if ok else EBADF
                else:
                    error = EINVAL
                ready = len(io.stdin) - io.stdin_pos if tag == 1 and error == ESUCCESS else 0
                struct.pack_into("<QHBxxxxxQH", mem, events + 32 * i, userdata, error, tag, ready, 0)
            io.extra_ns += advance
            self._put(mem, "<I", nevents_ptr, count)
        except _Fault:
            return EFAULT
        return ESUCCESS

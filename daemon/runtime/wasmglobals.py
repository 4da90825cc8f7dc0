"""Which of a module's globals are mutable and which of those it exports, read from its bytes.

Why: a checkpoint must hold every piece of state that survives between two ``novacron_step``
calls. Linear memory is reachable through the exported memory, and exported globals through
wasmtime's API, but a global the module does not export is invisible to the host. So a
resumable module must export every mutable global it defines (for C, ``-mmutable-globals
-Wl,--export=__stack_pointer``); ``unexported_mutable_globals`` finds the ones it does not.

Only the import, global and export sections are read; every count and length is bounded by the
bytes that remain, so hostile input ends in ``WasmParseError``, never a large allocation.
"""

from __future__ import annotations

from daemon.errors import DaemonError

_IMPORT, _GLOBAL, _EXPORT = 2, 6, 7
_KIND_GLOBAL = 3


class WasmParseError(DaemonError):
    """The bytes are not a module this reader understands."""


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WasmParseError("truncated module")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.end:
            raise WasmParseError("truncated module")
        self.pos += n

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise WasmParseError("LEB128 number too long")

    def name(self) -> str:
        n = self.uleb()
        start = self.pos
        self.skip(n)
        return self.data[start:self.pos].decode("utf-8", "replace")

    def limits(self) -> None:
        flags = self.byte()
        self.uleb()
        if flags & 1:
            self.uleb()

    def const_expr(self) -> None:
        """Skip a constant expression up to its ``end`` (0x0B), immediates included."""
        while True:
            op = self.byte()
            if op == 0x0B:
                return
            if op in (0x41, 0x42, 0x23, 0xD2):  # i32/i64.const (s)LEB, global.get, ref.func
                self.uleb()
            elif op == 0x43:
                self.skip(4)
            elif op == 0x44:
                self.skip(8)
            elif op == 0xD0:  # ref.null heaptype
                self.byte()
            elif op == 0xFD:  # v128.const
                self.uleb()
                self.skip(16)
            # extended-const arithmetic (i32.add ...) has no immediates


def unexported_mutable_globals(module: bytes) -> list[int]:
    """Indices of the mutable globals ``module`` defines but does not export."""
    if module[:4] != b"\0asm":
        raise WasmParseError("not a WebAssembly module")
    r = _Reader(module, 8)
    imported = 0
    mutable: list[int] = []
    exported: set[int] = set()
    while r.pos < r.end:
        section = r.byte()
        size = r.uleb()
        body = _Reader(module, r.pos, r.pos + size)
        r.skip(size)
        if section == _IMPORT:
            for _ in range(body.uleb()):
                body.name()
                body.name()
                kind = body.byte()
                if kind == 0:
                    body.uleb()
                elif kind == 1:
                    body.byte()
                    body.limits()
                elif kind == 2:
                    body.limits()
                elif kind == _KIND_GLOBAL:
                    body.byte()
                    body.byte()
                    imported += 1
                else:
                    body.uleb()  # tag
        elif section == _GLOBAL:
            for i in range(body.uleb()):
                body.byte()  # value type
                if body.byte() & 1:
                    mutable.append(imported + i)
                body.const_expr()
        elif section == _EXPORT:
            for _ in range(body.uleb()):
                body.name()
                kind = body.byte()
                index = body.uleb()
                if kind == _KIND_GLOBAL:
                    exported.add(index)
    return [g for g in mutable if g not in exported]

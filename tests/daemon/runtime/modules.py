"""Test modules: the committed C-built ones, and hostile ones written as WAT text here.

Each WAT module is a WASI command (exports ``memory`` and ``_start``) that misbehaves in one
way a careless or malicious job could.
"""

from __future__ import annotations

from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parents[3]
PI = ROOT / "examples" / "pi" / "pi.wasm"
SWEEP = ROOT / "examples" / "sweep" / "sweep.wasm"
PROBE = ROOT / "tests" / "daemon" / "runtime" / "wasm" / "probe.wasm"
HOG = ROOT / "tests" / "daemon" / "runtime" / "wasm" / "hog.wasm"

_WASI = '(import "wasi_snapshot_preview1" "{name}" (func ${name} {sig}))'
_SIGS = {
    "fd_write": "(param i32 i32 i32 i32) (result i32)",
    "proc_exit": "(param i32)",
    "random_get": "(param i32 i32) (result i32)",
}


def wat(body: str, *imports: str, memory: int = 1) -> bytes:
    """A command module importing the named WASI functions, with ``body`` inside it."""
    lines = [_WASI.format(name=n, sig=_SIGS[n]) for n in imports]
    return bytes(wasmtime.wat2wasm(
        "(module\n" + "\n".join(lines) + f'\n(memory (export "memory") {memory})\n{body}\n)'))


def empty() -> bytes:
    return wat('(func (export "_start"))')


def infinite_loop() -> bytes:
    return wat('(func (export "_start") (loop (br 0)))')


def grow_until_refused() -> bytes:
    """memory.grow one page at a time until refused, then `unreachable` (a Rust-style abort)."""
    return wat('''(func (export "_start")
      (loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      unreachable)''')


def unreachable() -> bytes:
    return wat('(func $boom unreachable) (func (export "_start") (call $boom))')


def divide_by_zero() -> bytes:
    return wat('''(func (export "_start")
      (drop (i32.div_s (i32.const 1) (i32.sub (i32.const 1) (i32.const 1)))))''')


def deep_recursion() -> bytes:
    return wat('''(func $down (param i32) (result i32)
        (i32.add (call $down (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))
      (func (export "_start") (drop (call $down (i32.const 0))))''')


def endless_output() -> bytes:
    """Writes 4 KiB of 'y' to stdout forever (iovec at 0: base 16, length 4096)."""
    return wat('''(data (i32.const 0) "\\10\\00\\00\\00\\00\\10\\00\\00")
      (func (export "_start")
        (memory.fill (i32.const 16) (i32.const 121) (i32.const 4096))
        (loop (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
              (br 0)))''', "fd_write")


def bad_pointer_exit() -> bytes:
    """fd_write with an iovec far outside memory, then proc_exit(errno it got)."""
    return wat('''(data (i32.const 0) "\\00\\00\\ff\\ff\\10\\00\\00\\00")
      (func (export "_start")
        (call $proc_exit (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))''',
               "fd_write", "proc_exit")


def random_twice() -> bytes:
    """random_get 10 bytes, then 10 more right after them; write all 20 to stdout."""
    return wat('''(data (i32.const 0) "\\40\\00\\00\\00\\14\\00\\00\\00")
      (func (export "_start")
        (drop (call $random_get (i32.const 64) (i32.const 10)))
        (drop (call $random_get (i32.const 74) (i32.const 10)))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))''',
               "fd_write", "random_get")


def exit_with(code: int) -> bytes:
    return wat(f'(func (export "_start") (call $proc_exit (i32.const {code})))', "proc_exit")


def complain_and_exit(text: str, code: int) -> bytes:
    """Writes ``text`` (ASCII) to stderr, then exits with ``code``: a module that fails loudly."""
    data = text.encode()
    escaped = "".join(f"\\{b:02x}" for b in data)
    return wat(f'''(data (i32.const 0) "\\10\\00\\00\\00\\{len(data):02x}\\00\\00\\00")
      (data (i32.const 16) "{escaped}")
      (func (export "_start")
        (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $proc_exit (i32.const {code})))''', "fd_write", "proc_exit")


def huge_initial_memory(pages: int) -> bytes:
    return wat('(func (export "_start"))', memory=pages)


def imports(module: str, name: str, sig: str = "") -> bytes:
    return bytes(wasmtime.wat2wasm(f'''(module (import "{module}" "{name}" (func {sig}))
      (memory (export "memory") 1) (func (export "_start")))'''))


def no_start() -> bytes:
    return bytes(wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "main")))'))


def random_flood() -> bytes:
    """random_get 64 KiB at a time, forever: host work that wasm fuel alone would not see."""
    return wat('''(func (export "_start")
      (loop (drop (call $random_get (i32.const 0) (i32.const 65536))) (br 0)))''', "random_get")


def stderr_flood() -> bytes:
    """Writes the whole of its 4 MiB memory to stderr, forever."""
    return wat('''(data (i32.const 0) "\\00\\00\\00\\00\\00\\00\\40\\00")
      (func (export "_start")
        (loop (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
              (br 0)))''', "fd_write", memory=64)


def zero_memory_write() -> bytes:
    """A module with a memory of zero pages that calls fd_write and exits with its errno."""
    return wat('''(func (export "_start")
        (call $proc_exit (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))''',
               "fd_write", "proc_exit", memory=0)

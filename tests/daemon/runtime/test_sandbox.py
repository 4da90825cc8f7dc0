"""The sandbox against hostile modules: each ends with the right status and a clear detail, and
the same sandbox then still runs an honest task correctly."""

from __future__ import annotations

import hashlib

import pytest

from daemon.runtime.abi import STDERR_TAIL
from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import Limits
from daemon.runtime.sandbox import Sandbox
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime import modules

SMALL = Limits(fuel=50_000_000, memory_pages=64, wall_s=10.0, max_output=64 * 1024)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


def run(sandbox: Sandbox, wasm: bytes, stdin: bytes = b"", limits: Limits = SMALL, **kw):
    return sandbox.run(module_hash(wasm), wasm, stdin, limits, **kw)


def pi_ok(sandbox: Sandbox) -> None:
    wasm = modules.PI.read_bytes()
    out = run(sandbox, wasm, b"7 1000\n", Limits())
    assert (out.status, out.output) == (TaskStatus.OK, b"763 1000\n")


def test_empty_module_runs_ok(sandbox):
    out = run(sandbox, modules.empty())
    assert out.status is TaskStatus.OK and out.detail == "ok" and out.output == b""


def test_infinite_loop_runs_out_of_fuel(sandbox):
    out = run(sandbox, modules.infinite_loop())
    assert out.status is TaskStatus.OUT_OF_FUEL
    assert out.detail == "out of fuel after 50,000,000 units"
    assert out.fuel_used == 50_000_000
    pi_ok(sandbox)


def test_infinite_loop_hits_the_wall_clock_limit(sandbox):
    out = run(sandbox, modules.infinite_loop(), limits=Limits(fuel=2**62, wall_s=0.2))
    assert out.status is TaskStatus.TIMED_OUT
    assert out.detail == "wall-clock limit 0.2 s exceeded"
    pi_ok(sandbox)


def test_growing_memory_without_bound_is_out_of_memory(sandbox):
    out = run(sandbox, modules.grow_until_refused())
    assert out.status is TaskStatus.OUT_OF_MEMORY
    assert out.memory_pages == 64
    assert out.detail.startswith("memory limit 64 pages (4 MiB) reached; then trapped: wasm "
                                 "`unreachable` instruction executed")
    pi_ok(sandbox)


@pytest.mark.parametrize("argv, then", [((b"hog",), "then trapped: wasm `unreachable`"),
                                        ((b"hog", b"exit"), "then exited with code 3")])
def test_c_malloc_until_null_is_out_of_memory(sandbox, argv, then):
    out = run(sandbox, modules.HOG.read_bytes(), limits=Limits(memory_pages=256), argv=argv)
    assert out.status is TaskStatus.OUT_OF_MEMORY
    assert out.detail.startswith("memory limit 256 pages (16 MiB) reached; " + then)
    assert b"hog: malloc failed after 15 MiB" in out.stderr


def test_initial_memory_above_the_limit_is_out_of_memory(sandbox):
    out = run(sandbox, modules.huge_initial_memory(100))
    assert out.status is TaskStatus.OUT_OF_MEMORY
    assert "does not fit the limit of 64 pages (4 MiB)" in out.detail


def test_unreachable_traps_and_names_the_function(sandbox):
    out = run(sandbox, modules.unreachable())
    assert out.status is TaskStatus.TRAPPED
    assert out.detail == ("trap: wasm `unreachable` instruction executed (abort() or a failed "
                          "assert) in func 0 (boom) (1 of 64 pages in use)")


def test_division_by_zero_traps(sandbox):
    out = run(sandbox, modules.divide_by_zero())
    assert out.status is TaskStatus.TRAPPED
    assert out.detail.startswith("trap: integer division by zero in func 0")


def test_deep_recursion_traps_with_stack_overflow(sandbox):
    out = run(sandbox, modules.deep_recursion(), limits=Limits())
    assert out.status is TaskStatus.TRAPPED
    assert out.detail.startswith("trap: call stack exhausted (too deep recursion) in func 0")
    pi_ok(sandbox)


def test_endless_output_stops_at_the_output_cap(sandbox):
    out = run(sandbox, modules.endless_output())
    assert out.status is TaskStatus.OUTPUT_TOO_LARGE
    assert out.detail == "output passed the limit of 65,536 bytes"
    assert out.output == b"y" * 65536


def test_bad_pointer_gets_efault_not_a_crash(sandbox):
    out = run(sandbox, modules.bad_pointer_exit())
    assert out.status is TaskStatus.EXITED
    assert (out.exit_code, out.detail) == (21, "exited with code 21")  # 21 = EFAULT


def test_a_zero_page_memory_gets_efault_too(sandbox):
    out = run(sandbox, modules.zero_memory_write())
    assert (out.status, out.exit_code) == (TaskStatus.EXITED, 21)


@pytest.mark.parametrize("wasm", [modules.random_flood(), modules.stderr_flood()],
                         ids=["random_get", "stderr"])
def test_host_work_is_paid_in_fuel_so_floods_end_out_of_fuel(sandbox, wasm):
    out = run(sandbox, wasm)
    assert out.status is TaskStatus.OUT_OF_FUEL
    assert out.fuel_used == SMALL.fuel
    assert len(out.stderr) <= STDERR_TAIL  # only the tail is kept
    again = run(sandbox, wasm)
    assert (again.status, again.fuel_used, again.stderr) == (out.status, out.fuel_used, out.stderr)


def test_proc_exit_zero_is_ok_and_nonzero_is_exited(sandbox):
    assert run(sandbox, modules.exit_with(0)).status is TaskStatus.OK
    out = run(sandbox, modules.exit_with(-1))
    assert (out.status, out.exit_code, out.detail) == (TaskStatus.EXITED, -1, "exited with code -1")


@pytest.mark.parametrize("wasm, reason", [
    (modules.imports("env", "something"),
     "module imports env.something: only wasi_snapshot_preview1 functions are available"),
    (modules.imports("wasi_snapshot_preview1", "no_such_call"),
     "module imports wasi_snapshot_preview1.no_such_call, which is not a WASI preview1 function"),
    (modules.imports("wasi_snapshot_preview1", "fd_write", "(param i32)"),
     "module imports wasi_snapshot_preview1.fd_write with type"),
    (modules.imports("wasi_unstable", "fd_write", "(param i32 i32 i32 i32) (result i32)"),
     "module imports wasi_unstable.fd_write: only wasi_snapshot_preview1"),
    (modules.no_start(), "module has no `_start` function"),
    (b"\x00asm\x01\x00\x00\x00garbage", "not a valid WebAssembly module"),
    (b"#!/bin/sh\nrm -rf /\n", "not a valid WebAssembly module"),
])
def test_forbidden_or_broken_modules_are_refused(sandbox, wasm, reason):
    out = run(sandbox, wasm)
    assert out.status is TaskStatus.REFUSED
    assert out.detail.startswith(reason), out.detail
    assert module_hash(wasm) not in sandbox.cache


def test_bytes_that_do_not_match_the_hash_are_refused(sandbox):
    out = sandbox.run(module_hash(b"something else"), modules.empty(), b"", SMALL)
    assert out.status is TaskStatus.REFUSED and "do not match hash" in out.detail


def test_input_over_the_limit_is_refused(sandbox):
    out = run(sandbox, modules.empty(), b"x" * 11, Limits(max_input=10))
    assert (out.status, out.detail) == (TaskStatus.REFUSED, "input is 11 bytes, limit 10")


def test_pi_is_byte_identical_across_runs_and_sandboxes(sandbox):
    wasm = modules.PI.read_bytes()
    first = run(sandbox, wasm, b"7 1000000\n", Limits())
    again = run(sandbox, wasm, b"7 1000000\n", Limits())
    other = run(Sandbox(), wasm, b"7 1000000\n", Limits())
    assert first.output == again.output == other.output == b"785526 1000000\n"
    assert first.fuel_used == again.fuel_used == other.fuel_used


def test_sweep_example_computes_the_lyapunov_exponent(sandbox):
    wasm = modules.SWEEP.read_bytes()
    argv = (b"sweep", b"2.5", b"4.0", b"101")
    settled = run(sandbox, wasm, b"20\n", Limits(), argv=argv)  # r = 2.8: a stable fixed point
    chaos = run(sandbox, wasm, b"100\n", Limits(), argv=argv)  # r = 4: lambda = ln 2
    i, r, lam = settled.output.split()
    assert (i, float(r)) == (b"20", 2.8) and float(lam) < 0
    i, r, lam = chaos.output.split()
    assert (i, float(r)) == (b"100", 4.0) and abs(float(lam) - 0.6931) < 0.01
    assert hashlib.sha256(chaos.output).hexdigest() == hashlib.sha256(
        run(sandbox, wasm, b"100\n", Limits(), argv=argv).output).hexdigest()


def test_example_with_bad_input_exits_with_its_message(sandbox):
    out = run(sandbox, modules.PI.read_bytes(), b"seven\n", Limits())
    assert out.status is TaskStatus.EXITED
    assert out.detail == ('exited with code 2; stderr: pi: input must be "<seed> <samples>", '
                          'e.g. "7 1000000"')


def test_stderr_is_kept_with_the_exit_code(sandbox):
    out = run(sandbox, modules.complain_and_exit("bad input: expected a number\n", 2))
    assert (out.status, out.exit_code) == (TaskStatus.EXITED, 2)
    assert out.stderr == b"bad input: expected a number\n"
    assert "stderr: bad input: expected a number" in out.detail

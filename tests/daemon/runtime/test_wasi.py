"""The WASI subset as a real wasi-libc program sees it: the job's world, never the host's."""

from __future__ import annotations

import hashlib

import pytest

from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import Limits
from daemon.runtime.sandbox import Sandbox
from daemon.runtime.abi import SIGNATURES
from daemon.runtime.wasi import TaskIO
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime import modules

SEED = bytes(range(32))
T0 = 1_700_000_000_123_000_000


@pytest.fixture(scope="module")
def probe() -> dict[str, list[str]]:
    wasm = modules.PROBE.read_bytes()
    out = Sandbox().run(module_hash(wasm), wasm, b"hello", Limits(), seed=SEED,
                        argv=(b"probe", b"two words"), logical_time_ns=T0)
    assert out.status is TaskStatus.OK, out.detail
    assert out.stderr == b"probe: done\n"
    facts: dict[str, list[str]] = {}
    for line in out.output.decode().splitlines():
        key, *rest = line.split(" ", 1)
        facts.setdefault(key, []).append(rest[0] if rest else "")
    return facts


def stream(seed: bytes, n: int) -> bytes:
    """The documented random stream, computed independently of the runtime."""
    blocks = b"".join(hashlib.shake_256(seed + i.to_bytes(8, "little")).digest(4096)
                      for i in range(2))
    return blocks[:n]


def test_argv_is_the_jobs_and_environment_is_empty(probe):
    assert probe["argc"] == ["2"]
    assert probe["argv"] == ["0 probe", "1 two words"]
    assert probe["environ"] == ["0"]


def test_clocks_are_logical_and_advance_one_microsecond_per_reading(probe):
    assert probe["realtime"] == [str(T0 + 1000)]
    assert probe["time"] == [str((T0 + 2000) // 10**9)]
    assert probe["monotonic"] == ["3000 4000 resolution 1000"]


def test_sleep_advances_the_logical_clock_instead_of_waiting(probe):
    # nanosleep(1.5 s) took no real time (the whole probe has a 60 s limit and runs in ms) and
    # the next reading is 1.5 s plus one tick later.
    assert probe["after"] == [f"sleep {1_500_000_000 + 5000}"]


def test_random_is_the_seeded_shake256_stream(probe):
    assert probe["random"] == ["0 " + stream(SEED, 16).hex()]


def test_there_are_no_files(probe):
    assert probe["fopen"] == ["failed"]


def test_stdin_is_the_task_input(probe):
    assert probe["stdin"] == [f"5 {sum(b'hello')}"]


def test_random_stream_continues_across_calls():
    wasm = modules.random_twice()
    out = Sandbox().run(module_hash(wasm), wasm, b"", Limits(), seed=b"k")
    assert out.output == stream(b"k", 20)


def test_task_io_random_bytes_split_anywhere_give_one_stream():
    whole = TaskIO(b"", (), b"seed", 0, 0).random_bytes(5000)
    parts = TaskIO(b"", (), b"seed", 0, 0)
    assert b"".join(parts.random_bytes(n) for n in (1, 63, 4000, 0, 936)) == whole
    assert whole == stream(b"seed", 5000)


def test_every_preview1_function_is_defined_with_its_signature():
    # The table is the whole of wasi_snapshot_preview1 as wasi-libc declares it.
    assert len(SIGNATURES) == 46
    assert SIGNATURES["path_open"] == (("i32",) * 5 + ("i64", "i64", "i32", "i32"), ("i32",))
    assert SIGNATURES["proc_exit"] == (("i32",), ())

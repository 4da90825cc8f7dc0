"""Resumable tasks in the real wasmtime sandbox: checkpoints every replica agrees on, restore
into a fresh instance that ends exactly as an uninterrupted run, tampering caught at the next
checkpoint, and hostile or broken checkpoint bytes refused."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import wasmtime
import zstandard

from daemon.runtime import checkpoint as ck
from daemon.runtime.cache import module_hash
from daemon.runtime.outcome import Limits
from daemon.runtime.resumable import Checkpoint, CheckpointPolicy
from daemon.runtime.sandbox import Sandbox
from daemon.runtime.wasmglobals import WasmParseError, unexported_mutable_globals
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime.modules import ROOT

LIFE = (ROOT / "examples" / "life" / "life.wasm").read_bytes()
LIFE_HASH = module_hash(LIFE)
INPUT = b"7 128 300\n"
LIMITS = Limits(fuel=10**11, memory_pages=64, wall_s=60, max_output=1 << 16)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox()


@pytest.fixture(scope="module")
def plain(sandbox):
    out = sandbox.run(LIFE_HASH, LIFE, INPUT, LIMITS)
    assert out.status is TaskStatus.OK, out.detail
    assert out.output.endswith(b"\n") and out.output.count(b"\n") == 4  # 3 progress + final
    return out


def policy(plain, per_run: int = 10, keyframe_every: int = 4) -> CheckpointPolicy:
    return CheckpointPolicy(every_fuel=plain.fuel_used // per_run, keyframe_every=keyframe_every)


def run_all(sandbox, pol, **kw) -> tuple[list[Checkpoint], object]:
    taken: list[Checkpoint] = []

    def keep(c: Checkpoint) -> bool:
        taken.append(c)
        return True
    result = sandbox.run_resumable(LIFE_HASH, LIFE, INPUT, LIMITS, policy=pol, on_checkpoint=keep,
                                   **kw)
    return taken, result


def chain_to(cps: list[Checkpoint], k: int) -> list[bytes]:
    first = max(i for i in range(k + 1) if cps[i].keyframe)
    return [c.blob for c in cps[first:k + 1]]


def test_checkpointed_run_ends_exactly_as_an_uninterrupted_one(sandbox, plain):
    cps, result = run_all(sandbox, policy(plain))
    assert result.outcome is not None
    assert (result.outcome.output, result.outcome.fuel_used, result.outcome.status) == (
        plain.output, plain.fuel_used, plain.status)
    assert 8 <= len(cps) <= 10
    assert [c.seq for c in cps] == list(range(len(cps)))
    assert [c.keyframe for c in cps] == [i % 4 == 0 for i in range(len(cps))]
    assert all(b.fuel_used - a.fuel_used >= plain.fuel_used // 10 for a, b in zip(cps, cps[1:]))


def test_two_replicas_make_byte_identical_checkpoints(plain):
    a, _ = run_all(Sandbox(), policy(plain))
    b, _ = run_all(Sandbox(), policy(plain))
    assert [c.digest for c in a] == [c.digest for c in b]
    assert [c.blob for c in a] == [c.blob for c in b]


@pytest.mark.parametrize("k", [0, 2, 5])  # a key frame, a delta chain, a chain after a key frame
def test_restore_in_a_fresh_instance_finishes_as_uninterrupted(sandbox, plain, k):
    cps, _ = run_all(sandbox, policy(plain))
    taken: list[Checkpoint] = []
    result = sandbox.run_resumable(LIFE_HASH, LIFE, INPUT, LIMITS, policy=policy(plain),
                                   resume=chain_to(cps, k), resume_digest=cps[k].digest,
                                   on_checkpoint=lambda c: taken.append(c) is None)
    assert result.outcome is not None
    assert result.outcome.output == plain.output
    assert result.outcome.fuel_used == plain.fuel_used
    # the resumed run's later checkpoints are the uninterrupted run's, byte for byte
    assert [c.digest for c in taken] == [c.digest for c in cps[k + 1:]]


def test_stopping_at_a_checkpoint_hands_off_and_another_sandbox_finishes(sandbox, plain):
    seen: list[Checkpoint] = []
    stopped = sandbox.run_resumable(
        LIFE_HASH, LIFE, INPUT, LIMITS, policy=policy(plain),
        on_checkpoint=lambda c: seen.append(c) is None and c.seq < 3)
    assert stopped.outcome is None and stopped.stopped_at == 3
    other = Sandbox()
    done = other.run_resumable(LIFE_HASH, LIFE, INPUT, LIMITS, policy=policy(plain),
                               resume=chain_to(seen, 3), resume_digest=seen[3].digest)
    assert done.outcome is not None and done.outcome.output == plain.output


def test_tampered_state_is_caught_at_the_next_checkpoint(sandbox, plain):
    honest, _ = run_all(sandbox, policy(plain, keyframe_every=100))
    snap = ck.decode(honest[2].blob, max_memory=LIMITS.memory_pages * 65536,
                     max_output=LIMITS.max_output)
    data = bytearray(snap.data)
    data[len(data) // 2] ^= 1  # one cell of the board flipped by a cheating volunteer
    forged, digest = ck.encode(snap.base, snap.seq, snap.steps, snap.fuel_used,
                               snap.memory_bytes, snap.globals, snap.host, snap.indices,
                               bytes(data))
    chain = [c.blob for c in honest[:2]] + [forged]
    cheat: list[Checkpoint] = []
    sandbox.run_resumable(LIFE_HASH, LIFE, INPUT, LIMITS, policy=policy(plain, keyframe_every=100),
                          resume=chain, resume_digest=digest,
                          on_checkpoint=lambda c: cheat.append(c) is None and False)
    assert cheat[0].seq == 3 and cheat[0].digest != honest[3].digest


def test_a_chain_that_is_not_the_agreed_one_is_refused(sandbox, plain):
    cps, _ = run_all(sandbox, policy(plain))
    with pytest.raises(ck.CheckpointError, match="agreed"):
        sandbox.run_resumable(LIFE_HASH, LIFE, INPUT, LIMITS, policy=policy(plain),
                              resume=chain_to(cps, 2), resume_digest=cps[1].digest)
    with pytest.raises(ck.CheckpointError, match="key frame"):
        sandbox.run_resumable(LIFE_HASH, LIFE, INPUT, LIMITS, policy=policy(plain),
                              resume=[cps[1].blob])
    with pytest.raises(ck.CheckpointError, match="does not follow"):
        sandbox.run_resumable(LIFE_HASH, LIFE, INPUT, LIMITS, policy=policy(plain),
                              resume=[cps[0].blob, cps[2].blob])


def test_corrupt_and_oversized_blobs_are_refused(plain, sandbox):
    cps, _ = run_all(sandbox, policy(plain))
    blob = cps[0].blob
    bounds = {"max_memory": LIMITS.memory_pages * 65536, "max_output": LIMITS.max_output}
    with pytest.raises(ck.CheckpointError, match="magic"):
        ck.decode(b"XXXX" + blob[4:], **bounds)
    broken = bytearray(blob)
    broken[len(broken) // 2] ^= 0xFF
    with pytest.raises(ck.CheckpointError):
        ck.decode(bytes(broken), **bounds)
    with pytest.raises(ck.CheckpointError, match="over the limit"):
        ck.decode(blob, max_memory=4096, max_output=0)
    bomb = ck.MAGIC + zstandard.ZstdCompressor().compress(bytes(8 << 20))  # a few hundred bytes
    with pytest.raises(ck.CheckpointError, match="over its bound"):
        ck.decode(bomb, **bounds)
    with pytest.raises(ck.CheckpointError):
        ck.decode(blob[:20], **bounds)


def test_delta_tracker_carries_only_changed_chunks_and_grown_memory():
    mem = np.zeros(4 * ck.CHUNK, np.uint8)
    mem[5] = 1
    tracker = ck.DeltaTracker()
    idx, _ = tracker.delta(mem, keyframe=True)
    assert idx.tolist() == [0]
    mem[ck.CHUNK * 2] = 9
    idx, data = tracker.delta(mem, keyframe=False)
    assert idx.tolist() == [2] and data[0] == 9
    grown = np.concatenate([mem, np.zeros(2 * ck.CHUNK, np.uint8)])
    grown[-1] = 3
    idx, _ = tracker.delta(grown, keyframe=False)
    assert idx.tolist() == [5]
    assert tracker.delta(grown, keyframe=False)[0].tolist() == []


GLOBALS_WAT = """
(module
  (memory (export "memory") 1)
  (global $f (export "f") (mut f64) (f64.const 0.5))
  (global $n (export "n") (mut i64) (i64.const 0))
  (func (export "novacron_step") (result i32)
    (global.set $f (f64.mul (global.get $f) (f64.const 1.5)))
    (global.set $n (i64.add (global.get $n) (i64.const 1)))
    (i32.store (i32.const 0) (i32.wrap_i64 (global.get $n)))
    (if (result i32) (i64.lt_u (global.get $n) (i64.const 1000))
      (then (i32.const 1))
      (else (i64.store (i32.const 8) (i64.reinterpret_f64 (global.get $f))) (i32.const 0)))))
"""


def test_exported_globals_of_every_type_survive_a_restore(sandbox):
    module = bytes(wasmtime.wat2wasm(GLOBALS_WAT))
    digest = module_hash(module)
    pol = CheckpointPolicy(every_fuel=2_000, keyframe_every=2)
    cps: list[Checkpoint] = []
    full = sandbox.run_resumable(digest, module, b"", LIMITS, policy=pol,
                                 on_checkpoint=lambda c: cps.append(c) is None)
    assert full.outcome is not None and full.outcome.status is TaskStatus.OK
    again: list[Checkpoint] = []
    sandbox.run_resumable(digest, module, b"", LIMITS, policy=pol, resume=chain_to(cps, 3),
                          resume_digest=cps[3].digest,
                          on_checkpoint=lambda c: again.append(c) is None)
    assert [c.digest for c in again] == [c.digest for c in cps[4:]]


def test_a_resumable_module_that_hides_a_mutable_global_is_refused(sandbox):
    hidden = bytes(wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (global $g (mut i32) (i32.const 0))'
        ' (func (export "novacron_step") (result i32) (global.set $g (i32.const 1)) i32.const 0))'))
    assert unexported_mutable_globals(hidden) == [0]
    out = sandbox.run(module_hash(hidden), hidden, b"", LIMITS)
    assert out.status is TaskStatus.REFUSED and "__stack_pointer" in out.detail
    assert unexported_mutable_globals(LIFE) == []
    with pytest.raises(WasmParseError):
        unexported_mutable_globals(hidden[:len(hidden) - 3])


def test_a_command_module_cannot_checkpoint_and_says_why(sandbox):
    from tests.daemon.runtime.modules import PI
    pi = PI.read_bytes()
    result = sandbox.run_resumable(module_hash(pi), pi, b"7 1000\n", LIMITS,
                                   policy=CheckpointPolicy(every_fuel=1000))
    assert result.outcome is not None and result.outcome.status is TaskStatus.REFUSED
    assert "novacron_step" in result.outcome.detail


def test_bad_input_exits_with_the_modules_code(sandbox):
    out = sandbox.run(LIFE_HASH, LIFE, b"nonsense\n", LIMITS)
    assert out.status is TaskStatus.EXITED and out.exit_code == 2
    assert b"life: input must be" in out.stderr



async def test_the_worker_pool_streams_checkpoints_and_resumes_in_another_process(
        tmp_path, sandbox, plain):
    from daemon.runtime.pool import PoolConfig, WorkerPool

    every = plain.fuel_used // 6
    local, _ = run_all(sandbox, CheckpointPolicy(every_fuel=every))
    pool = WorkerPool(PoolConfig(workers=1, nice=0, cache_dir=tmp_path, max_memory_mb=256,
                                 runtime_overhead_mb=1024))
    streamed: list[Checkpoint] = []

    async def keep(c: Checkpoint) -> None:
        streamed.append(c)
    async with trio.open_nursery() as nursery:
        await nursery.start(pool.run)
        first = await pool.run_task(LIFE_HASH, LIFE, INPUT, LIMITS, checkpoint_fuel=every,
                                    on_checkpoint=keep)
        # the same checkpoints as in this process, byte for byte
        assert [c.blob for c in streamed] == [c.blob for c in local]
        assert first.output == plain.output and first.fuel_used == plain.fuel_used
        again = await pool.run_task(LIFE_HASH, None, INPUT, LIMITS, checkpoint_fuel=every,
                                    resume=(streamed[0].blob, streamed[1].blob),
                                    resume_digest=streamed[1].digest)
        assert again.output == plain.output and again.fuel_used == plain.fuel_used
        broken = await pool.run_task(LIFE_HASH, None, INPUT, LIMITS, checkpoint_fuel=every,
                                     resume=(streamed[1].blob,), resume_digest=streamed[1].digest)
        assert broken.status is TaskStatus.CRASHED and "key frame" in broken.detail
        nursery.cancel_scope.cancel()

"""The pure rules from the way a run stopped to a status and a one-line detail."""

from __future__ import annotations

import pytest

from daemon.runtime.outcome import EndKind, Ending, Limits, LimitsError, TaskOutcome, classify
from protocol.messages.tasks import TaskStatus

L = Limits(fuel=1000, memory_pages=256, wall_s=2.0, max_output=100)


def status(end: Ending, pages: int = 1, stderr: bytes = b"") -> tuple[TaskStatus, str]:
    return classify(end, L, memory_pages=pages, stderr=stderr)


def test_returned_and_exit_zero_are_ok():
    assert status(Ending(EndKind.RETURNED)) == (TaskStatus.OK, "ok")
    assert status(Ending(EndKind.EXITED, exit_code=0), pages=256) == (TaskStatus.OK, "ok")


def test_fuel_and_interrupt_traps():
    assert status(Ending(EndKind.TRAPPED, trap_code="OUT_OF_FUEL")) == (
        TaskStatus.OUT_OF_FUEL, "out of fuel after 1,000 units")
    assert status(Ending(EndKind.TRAPPED, trap_code="INTERRUPT"), pages=256) == (
        TaskStatus.TIMED_OUT, "wall-clock limit 2 s exceeded")


def test_exit_reports_the_last_stderr_line():
    got = status(Ending(EndKind.EXITED, exit_code=4), stderr=b"warming up\nbad input: x\n\n")
    assert got == (TaskStatus.EXITED, "exited with code 4; stderr: bad input: x")


@pytest.mark.parametrize("pages, expected", [(255, TaskStatus.OUT_OF_MEMORY),
                                             (241, TaskStatus.OUT_OF_MEMORY),
                                             (240, TaskStatus.TRAPPED),
                                             (10, TaskStatus.TRAPPED)])
def test_a_trap_near_the_memory_limit_is_out_of_memory(pages, expected):
    end = Ending(EndKind.TRAPPED, trap_code="UNREACHABLE", where="func 9 (abort)")
    got, detail = status(end, pages=pages)
    assert got is expected
    if expected is TaskStatus.OUT_OF_MEMORY:
        assert detail.startswith("memory limit 256 pages (16 MiB) reached; then trapped")
    else:
        assert detail.endswith(f"in func 9 (abort) ({pages} of 256 pages in use)")


def test_small_limits_use_a_smaller_margin():
    tiny = Limits(memory_pages=8)
    end = Ending(EndKind.EXITED, exit_code=1)
    assert classify(end, tiny, memory_pages=6, stderr=b"")[0] is TaskStatus.EXITED
    assert classify(end, tiny, memory_pages=8, stderr=b"")[0] is TaskStatus.OUT_OF_MEMORY


def test_unknown_trap_codes_keep_wasmtimes_words():
    end = Ending(EndKind.TRAPPED, trap_code="NULL_REFERENCE", message="null reference")
    assert status(end) == (TaskStatus.TRAPPED, "trap: null reference (1 of 256 pages in use)")


def test_output_cap_and_instantiation_failures():
    assert status(Ending(EndKind.OUTPUT_TOO_LARGE)) == (
        TaskStatus.OUTPUT_TOO_LARGE, "output passed the limit of 100 bytes")
    got = status(Ending(EndKind.INSTANTIATE_FAILED, message="unknown import"))
    assert got == (TaskStatus.TRAPPED, "could not instantiate: unknown import")


def test_limits_reject_nonsense_with_one_line():
    with pytest.raises(LimitsError, match="memory_pages must be 1..65536"):
        Limits(memory_pages=0)
    with pytest.raises(LimitsError, match="fuel must be between"):
        Limits(fuel=0)
    with pytest.raises(LimitsError, match="wall_s"):
        Limits(wall_s=-1)


def test_outcome_and_limits_survive_the_wire():
    out = TaskOutcome(TaskStatus.EXITED, "exited with code 3", b"out", 3, 12, 2, 0.5, b"err")
    assert TaskOutcome.from_wire(out.to_wire()) == out
    assert Limits.from_wire(L.to_wire()) == L

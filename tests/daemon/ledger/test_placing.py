"""Placement's affinity to the holders of a task's sticky files, read from the job's hard state
(the task input inlined in the submission), so the proposer and every replica agree."""

from __future__ import annotations

import hashlib

from daemon.ledger.placing import sticky_affinity
from protocol import sticky
from protocol.messages import ledger as ops
from tests.daemon.ledger.ledger_helpers import WORKERS, Harness


def envelope(holders, size=16 << 20) -> bytes:
    f = sticky.StickyFile("residual", hashlib.sha256(b"r").digest(), size,
                          tuple(w.node_id for w in holders))
    return sticky.StickyInput(b"s/0 2 int8 1 7", (f,), size).encode()


def test_a_task_naming_sticky_files_is_placed_on_their_holders_and_replicas_agree():
    h = Harness()
    inputs = (ops.TaskInput(b"\x00" * 32, 1, b"plain"),
              ops.TaskInput(b"\x01" * 32, 1, envelope(WORKERS[5:7])))
    job = h.submit(inputs=inputs)
    reply = h.place_all(job)  # every member executes the Place: check_proposal agrees
    assert "error" not in reply, reply
    tasks = h.ledger.jobs[job].tasks
    assert {r.worker for r in tasks[1].replicas} == {w.node_id for w in WORKERS[5:7]}
    assert not {r.worker for r in tasks[0].replicas} >= {w.node_id for w in WORKERS[5:7]}


def test_affinity_is_read_only_from_a_valid_inline_envelope():
    spec = ops.Submit("t", b"\x01" * 32, 1, ("t",), (
        ops.TaskInput(b"\x00" * 32, 1, envelope(WORKERS[:2], size=1_000_000)),
        ops.TaskInput(b"\x00" * 32, 1, sticky.MAGIC + b"nonsense"),
        ops.TaskInput(b"\x00" * 32, 1, None),
        ops.TaskInput(b"\x00" * 32, 1, b"plain")), 10**9, 16, 60_000, 1024, 2, 2, 4, 0, 3600, 0,
        1, 4)
    holders, seconds = sticky_affinity(spec, 0)
    assert holders == {w.node_id for w in WORKERS[:2]}
    assert 1.0 < seconds < 1.2  # 1 MB at the prior's 1 MB/s, plus its round trip
    for task in (1, 2, 3, 4, None):
        assert sticky_affinity(spec, task) == (frozenset(), 0.0)

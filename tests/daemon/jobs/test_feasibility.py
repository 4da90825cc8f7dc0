"""Unplaceable jobs are refused at submit; short only of records not yet heard, they wait."""

from daemon.jobs.feasibility import Needs, assess
from protocol.messages.ledger import CandidateWire


def cand(i: int, runtimes=("wasm32-wasi", "wasm32-wasi@r1"), memory=4096, attestation=0):
    return CandidateWire(f"node{i}", None, 2, memory, runtimes, attestation, 0, 20, f"d{i}", 0)


FOUR = [cand(i) for i in range(4)]


def test_enough_feasible_volunteers_pass():
    v = assess(Needs(2, 16, 0), FOUR, members=4)
    assert (v.feasible, v.refuse, v.waiting) == (4, None, None)


def test_more_replicas_than_members_is_refused_with_the_fix():
    v = assess(Needs(10, 16, 0), FOUR, members=4)
    assert v.refuse == ("replicas = 10 needs 10 distinct volunteers, and the network has 4 "
                        "member(s) now: lower [replication] replicas (and quorum) to at most 4")


def test_an_attestation_level_nobody_has_is_refused_when_every_member_is_known():
    v = assess(Needs(2, 16, 2), FOUR, members=4)
    assert v.refuse and "only 0 of the known volunteers have attestation tpm or better" in v.refuse


def test_a_runtime_nobody_runs_and_too_little_memory_are_refused():
    v = assess(Needs(2, 16, 0, runtime="python3.12"), FOUR, members=4)
    assert v.refuse and "only 0 of the known volunteers run python3.12" in v.refuse
    small = [cand(i, memory=8) for i in range(4)]
    v = assess(Needs(2, 16, 0), small, members=4)
    assert v.refuse and "offer 16 MiB of memory (lower [limits] memory_mb)" in v.refuse


def test_short_only_of_members_not_heard_from_yet_waits_and_says_for_what():
    v = assess(Needs(3, 16, 0), FOUR[:2], members=5)
    assert v.refuse is None
    assert v.waiting == ("2 of 3 feasible volunteers known: 2 of the known volunteers run "
                         "wasm32-wasi; 3 of the 5 members not heard from yet")

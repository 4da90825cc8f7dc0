"""The planner's side of error feedback in real jobs, and φ selection's inputs (pure)."""

from __future__ import annotations

import hashlib
import random

import pytest

from daemon.fl import feedback
from daemon.fl.feedback import Residual, plan_feedback, residual_after, task_input
from daemon.fl.params import FLError
from daemon.fl.select import choose, client_beta, phi_rows
from daemon.fl.spec import parse_fl_spec
from protocol import sticky

A, B, C = ("12D3KooW" + ch * 44 for ch in "ABC")
DIGEST = hashlib.sha256(b"residual").hexdigest()


def head(**ef):
    return {"shard": "s/0", "samples": 10, "loss": 0.5, "ef": ef or None}


def test_a_certified_result_leaves_a_residual_held_by_its_workers():
    r = residual_after(head(sha256=DIGEST, size=400), [B, A], rnd=3, model_bytes=400)
    assert r == Residual(DIGEST, 400, (A, B), 3)
    assert Residual.from_wire(r.to_wire()) == r and Residual.from_wire(None) is None
    assert residual_after({"shard": "s/0"}, [A], 3, 400) is None  # EF off: nothing kept
    assert residual_after(head(sha256=DIGEST, size=400), [], 3, 400) is None  # no holder known
    for bad in ({"sha256": "xyz", "size": 400}, {"sha256": DIGEST, "size": 399}, "oops"):
        with pytest.raises(FLError, match="not a residual of this model"):
            residual_after({"ef": bad}, [A], 3, 400)


def test_the_next_input_names_the_residual_and_its_live_holders():
    r = Residual(DIGEST, 400, (A, B), 3)
    plan = plan_feedback(r, live={B, C})
    assert plan.token == f"ef={DIGEST}" and plan.reset is None
    assert plan.file == sticky.StickyFile(feedback.RESIDUAL_FILE, bytes.fromhex(DIGEST), 400, (B,))
    data = task_input("s/0 4 int8 1 7", plan, keep=400)
    env = sticky.decode(data.encode())
    assert env is not None and env.stdin == f"s/0 4 int8 1 7 ef={DIGEST}".encode()
    assert env.files == (plan.file,) and env.keep == 400
    assert plan.as_dict() == {"residual": DIGEST, "holders": [B]}


def test_a_client_whose_holders_are_gone_starts_afresh_and_the_plan_says_why():
    r = Residual(DIGEST, 400, (A, B), 3)
    plan = plan_feedback(r, live={C})
    assert plan.token == "ef=new" and plan.file is None
    assert "are gone: error feedback reset" in plan.reset and A[-8:] in plan.reset
    assert plan.as_dict()["reset"] == plan.reset
    env = sticky.decode(task_input("s/0 4 int8 1 7", plan, keep=400).encode())
    assert env.files == () and env.stdin.endswith(b" ef=new") and env.keep == 400
    failed = plan_feedback(r, live={A, B}, last_failed=True)
    assert failed.file is None and "failed: error feedback reset" in failed.reset
    assert plan_feedback(None, live={A}) == feedback.FeedbackPlan("ef=new", None)


def test_without_error_feedback_the_input_is_the_plain_line():
    assert task_input("s/0 4 float32 1 7", None, keep=0) == "s/0 4 float32 1 7"


def test_holders_are_bounded_by_the_envelope():
    many = tuple("12D3KooW" + ch * 44 for ch in "abcdefghijk")
    plan = plan_feedback(Residual(DIGEST, 4, many, 1), live=set(many))
    assert len(plan.file.holders) == sticky.MAX_HOLDERS
    sticky.decode(task_input("x", plan, 4).encode())  # a valid envelope


def test_beta_is_the_staying_of_the_volunteers_that_would_run_the_client():
    staying = {A: 0.9, B: 0.3, C: 0.6}
    assert client_beta([A, B], staying) == pytest.approx(0.6)
    assert client_beta(["gone"], staying) == pytest.approx(0.6)  # where a new task lands
    assert client_beta([], {}) == 1.0
    rows = phi_rows(["s/0", "s/1"], {"s/0": 0.5}, {"s/0": [A], "s/1": [B]}, staying)
    assert rows == [(0.5, 0.9, pytest.approx(0.45)), (1.0, 0.3, pytest.approx(0.3))]


def test_phi_prefers_clients_that_stay_and_agree_and_is_seeded():
    phi = [0.9, 0.05, 0.9, 0.05, 0.9, 0.05]
    counts = [0] * 6
    for seed in range(300):
        for i in choose("phi", random.Random(seed), phi, 3):
            counts[i] += 1
    assert min(counts[0::2]) > 3 * max(counts[1::2]), counts
    assert choose("phi", random.Random(5), phi, 3) == choose("phi", random.Random(5), phi, 3)
    assert len(choose("random", random.Random(5), phi, 3)) == 3
    with pytest.raises(FLError, match="random or phi"):
        choose("best", random.Random(5), phi, 3)


def test_the_job_file_says_selection_and_error_feedback():
    base = {"script": "t.py", "model": "m.npz", "shards": ["s/*"], "test": "x.npz"}
    spec = parse_fl_spec({"fl": base}, "job.toml")
    assert spec.selection == "random" and spec.error_feedback
    assert not parse_fl_spec({"fl": {**base, "codec": "float32"}}, "job.toml").error_feedback
    assert parse_fl_spec({"fl": {**base, "selection": "phi", "error_feedback": False}},
                         "job.toml").selection == "phi"
    for extra, match in (({"selection": "best"}, "selection must be one of random, phi"),
                         ({"error_feedback": "yes"}, "true or false"),
                         ({"codec": "float32", "error_feedback": True}, "nothing to carry")):
        with pytest.raises(FLError, match=match):
            parse_fl_spec({"fl": {**base, **extra}}, "job.toml")


def test_staying_shares_read_the_published_availability_forecast():
    """A volunteer whose sessions last a month stays through a 2-hour horizon; one whose
    sessions last an hour is expected to leave within it; a node down (no session) has 0."""
    from daemon.fl.select import staying_shares
    from daemon.sched.profile import WeekProfile
    from daemon.sched.summary import AvailabilitySummary
    from daemon.sched.timebase import HOUR
    from protocol.messages.ledger import CandidateWire

    now = 1_706_486_400.0

    def wire(name, scale_h, up=True):
        avail = AvailabilitySummary(shape=1.0, scale_h=scale_h, events=200,
                                    exposure_h=200 * scale_h, on_fraction=0.9,
                                    up_since=now - 0.5 * HOUR if up else None,
                                    profile=WeekProfile.flat())
        return CandidateWire(name, avail.to_wire(), 4, 8192, ("wasm32-wasi",), 0, 100, 20,
                             name, 0)

    shares = staying_shares([wire("server", 720.0), wire("laptop", 1.0),
                             wire("down", 720.0, up=False)], now, 2 * HOUR)
    assert shares["server"] > 0.95 and 0.2 < shares["laptop"] < 0.7 and shares["down"] == 0.0
    assert staying_shares([], now, 60) == {}
    with pytest.raises(FLError, match="horizon"):
        staying_shares([], now, 0)

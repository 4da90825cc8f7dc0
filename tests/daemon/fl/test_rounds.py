"""The round planner and closer (``daemon.fl.rounds``), pure: which shards a round trains,
what each client's input says, how certified updates become the next model and the history
row, and what each client carries into its next round."""

import json

import numpy as np
import pytest

from daemon.fl import FLError
from daemon.fl.rounds import (ClientState, Planned, RoundPlan, TaskResult, chosen, close_round,
                              finish_row, model_digest, plan_round)
from daemon.fl.feedback import Residual
from daemon.fl.spec import parse_fl_spec
from daemon.fl.uplink import FLOAT32, encode_update

MODEL = {"w": np.zeros(4, np.float32)}


def _spec(**fl):
    return parse_fl_spec({"fl": {"script": "t.py", "model": "m.npz", "shards": ["s/*"],
                                 "test": "x.npz", "codec": "float32", "clients_per_round": 2,
                                 **fl}}, "job.toml")


def _output(shard, update, samples=10, loss=0.5):
    head = {"shard": shard, "round": 1, "samples": samples, "loss": loss, "codec": "float32"}
    return json.dumps(head).encode() + b"\n" + encode_update(update, FLOAT32)


def _plan(*shards):
    return RoundPlan(1, tuple(Planned(s, f"{s} 1 float32 1 1", None) for s in shards))


def test_each_round_draws_from_its_own_seed_so_a_resumed_run_picks_the_same():
    spec = _spec(seed=7)
    picks = [chosen(spec, 10, k) for k in range(1, 6)]
    assert picks == [chosen(spec, 10, k) for k in range(1, 6)]  # replayable
    assert len({tuple(p) for p in picks}) > 1 and all(len(p) == 2 for p in picks)
    assert chosen(_spec(seed=8), 10, 1) != picks[0] or chosen(_spec(seed=8), 10, 2) != picks[1]
    plan = plan_round(spec, [f"s/{i}" for i in range(10)], 3, {}, {}, [])
    assert plan.shards == [f"s/{i}" for i in picks[2]]


def test_plans_and_client_states_survive_their_wire_form():
    plan = plan_round(_spec(codec="adaptive", selection="phi"), ["s/0", "s/1"], 1,
                      {"s/0": ClientState(("a",))}, {"a": {"low": 2e5, "rtt_ms": 40.0}},
                      ["a", "b"], staying={"a": 0.5}, keep=16)
    assert plan.clients[0].notes["ef"] == {"residual": None, "holders": []}
    assert RoundPlan.from_wire(json.loads(json.dumps(plan.to_wire()))) == plan
    state = ClientState(("a", "b"))
    assert ClientState.from_wire(state.to_wire()) == state
    full = ClientState(("a",), Residual("ab" * 32, 16, ("a",), 3), True, 0.25)
    assert ClientState.from_wire(json.loads(json.dumps(full.to_wire()))) == full
    old = RoundPlan.from_wire({"round": 1, "clients": [["s/0", "line", None]]})  # stored before
    assert old.clients[0].notes == {}


def test_close_round_weights_updates_by_samples_and_carries_the_workers():
    spec = _spec()
    results = [TaskResult(0, "OK", _output("s/0", {"w": np.full(4, 1.0, np.float32)}, 10),
                          ("v1", "v2"), "d0", ("signatures: ok",), {"c": 1}),
               TaskResult(1, "OK", _output("s/1", {"w": np.full(4, 4.0, np.float32)}, 30),
                          ("v3", "v2"), "d1")]
    closed = close_round(spec, MODEL, _plan("s/0", "s/1"), results,
                         {"s/9": ClientState(("old",))}, job="ab" * 32)
    np.testing.assert_allclose(closed.model["w"], np.full(4, 3.25))  # (10*1 + 30*4) / 40
    row = closed.row
    assert (row["round"], row["updates"], row["lost"], row["levels"]) == (1, 2, 0,
                                                                          {"float32": 2})
    assert row["update_bytes"] == sum(len(r.output) for r in results)
    assert row["tasks"][0]["certificate"] == {"c": 1} and row["tasks"][0]["checks"] == [
        "signatures: ok"]
    assert closed.clients == {"s/9": ClientState(("old",)),  # alpha: both agree with the step
                              "s/0": ClientState(("v1", "v2"), alpha=1.0),
                              "s/1": ClientState(("v2", "v3"), alpha=1.0)}
    done = finish_row(spec, row, {"loss": 0.25, "accuracy": 0.5}, closed.model)
    assert list(done)[-4:] == ["test_loss", "accuracy", "model_sha256", "tasks"]
    assert done["model_sha256"] == model_digest(closed.model)


def test_lost_and_undecodable_updates_are_rows_not_crashes():
    spec = _spec()
    results = [TaskResult(0, "OK", b"not an update"),
               TaskResult(1, "OK", _output("s/1", {"w": np.ones(4, np.float32)})),
               TaskResult(2, "FAILED", detail="task failed")]
    closed = close_round(spec, MODEL, _plan("s/0", "s/1", "s/2"), results, {}, job="00")
    assert closed.row["updates"] == 1 and closed.row["lost"] == 2
    bad, _, failed = closed.row["tasks"]
    assert bad["status"] == "BAD_OUTPUT" and "JSON line" in bad["detail"]
    assert failed == {"task": 2, "shard": "s/2", "status": "FAILED", "detail": "task failed"}
    assert "s/0" not in closed.clients  # a lost client carries nothing new
    wrong = _output("s/0", {"v": np.ones(4, np.float32)})  # another model's tensor names
    with pytest.raises(FLError, match=r"round 1: no client's update was certified \(.*names"):
        close_round(spec, MODEL, _plan("s/0"), [TaskResult(0, "OK", wrong)], {}, job="00")


def test_dp_noise_is_seeded_by_job_seed_and_round():
    spec = _spec(dp_clip=1.0, dp_noise=0.5)
    results = [TaskResult(0, "OK", _output("s/0", {"w": np.ones(4, np.float32)}))]
    a = close_round(spec, MODEL, _plan("s/0"), results, {}, job="00")
    b = close_round(spec, MODEL, _plan("s/0"), results, {}, job="00")
    np.testing.assert_array_equal(a.model["w"], b.model["w"])  # a resumed round: same noise
    row = finish_row(spec, a.row, {"loss": 1, "accuracy": 0}, a.model)
    assert row["epsilon"] > 0


A, B, C = ("12D3KooW" + ch * 44 for ch in "ABC")


def _ef_output(shard, digest):
    head = {"shard": shard, "round": 1, "samples": 10, "loss": 0.5, "codec": "float32",
            "ef": {"sha256": digest, "size": 16, "applied": None, "norm": 0.1}}
    return json.dumps(head).encode() + b"\n" + encode_update({"w": np.ones(4, np.float32)},
                                                            FLOAT32)


def test_error_feedback_carries_each_residual_to_its_holders_and_resets_it_when_they_go():
    from protocol import sticky
    spec = _spec(codec="int8", clients_per_round=1, seed=3)
    shards = ["s/0"]
    first = plan_round(spec, shards, 1, {}, {}, [A, B], keep=16)
    (p1,) = first.clients
    env = sticky.decode(p1.input.encode())
    assert env.stdin.endswith(b" ef=new") and env.files == () and env.keep == 16
    closed = close_round(spec, MODEL, first, [TaskResult(0, "OK", _ef_output("s/0", "1" * 64),
                                                         (B, A), "d")], {}, job="00")
    state = closed.clients["s/0"]
    assert state.residual == Residual("1" * 64, 16, (A, B), 1)
    assert closed.row["tasks"][0]["ef"]["kept"]["sha256"] == "1" * 64
    # round 2: one holder left; the input names the residual and that holder
    second = plan_round(spec, shards, 2, closed.clients, {}, [B, C], keep=16)
    env = sticky.decode(second.clients[0].input.encode())
    assert env.stdin.endswith(b" ef=" + b"1" * 64) and env.files[0].holders == (B,)
    assert second.clients[0].notes["ef"] == {"residual": "1" * 64, "holders": [B]}
    # its task fails: the residual may be what it lacked, so the next round starts afresh
    with pytest.raises(FLError):  # nothing certified in the round: the driver retries it
        close_round(spec, MODEL, second, [TaskResult(0, "FAILED", detail="no")],
                    closed.clients, job="01")
    two = RoundPlan(2, second.clients + (Planned("s/9", "s/9 2 int8 1 3", None,
                                                 {"ef": {"residual": None, "holders": []}}),))
    lost = close_round(spec, MODEL, two, [TaskResult(0, "FAILED", detail="no"),
                                          TaskResult(1, "OK", _ef_output("s/9", "2" * 64),
                                                     (C,), "d")], closed.clients, job="01")
    assert lost.clients["s/0"].ef_failed and lost.row["tasks"][0]["ef"]["residual"] == "1" * 64
    third = plan_round(spec, shards, 3, lost.clients, {}, [A, B, C], keep=16)
    assert "failed: error feedback reset" in third.clients[0].notes["ef"]["reset"]
    # every holder gone: reset, recorded in the plan and so in the history row
    gone = plan_round(spec, shards, 2, closed.clients, {}, [C], keep=16)
    notes = gone.clients[0].notes["ef"]
    assert notes["residual"] is None and "are gone: error feedback reset" in notes["reset"]
    after = close_round(spec, MODEL, gone, [TaskResult(0, "OK", _ef_output("s/0", "3" * 64),
                                                       (C,), "d")], closed.clients, job="02")
    assert after.row["tasks"][0]["ef"]["reset"] == notes["reset"]
    assert after.clients["s/0"].residual == Residual("3" * 64, 16, (C,), 2)
    with pytest.raises(FLError, match="room for the residual"):
        plan_round(spec, shards, 1, {}, {}, [A])  # keep is the model's size, never 0


def test_phi_selection_draws_by_alpha_times_beta_and_records_them():
    spec = _spec(selection="phi", clients_per_round=1, seed=5)
    shards = ["s/0", "s/1"]
    clients = {"s/0": ClientState((A,), alpha=0.9), "s/1": ClientState((B,), alpha=0.9)}
    staying = {A: 1.0, B: 0.02}  # s/1's volunteer is about to leave
    picks = [plan_round(spec, shards, rnd, clients, {}, [A, B], staying=staying).shards
             for rnd in range(1, 41)]
    assert sum(p == ["s/0"] for p in picks) > 32
    plan = plan_round(spec, shards, 4, clients, {}, [A, B], staying=staying)
    assert plan == plan_round(spec, shards, 4, clients, {}, [A, B], staying=staying)  # seeded
    sel = plan.clients[0].notes["selected"]
    assert sel["phi"] == pytest.approx(sel["alpha"] * sel["beta"], abs=1e-6)
    assert plan_round(spec, shards, 4, {}, {}, [], staying={}).clients[0].notes["selected"] == {
        "alpha": 1.0, "beta": 1.0, "phi": 1.0}  # nothing known: no preference

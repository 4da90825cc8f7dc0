import numpy as np
import pytest

from daemon.sched.timebase import DAY, HOUR, WEEK
from testnet.churn import (
    Resumable,
    SimTask,
    known_law_policy,
    make_workload,
    on_fraction_policy,
    oracle_policy,
    ours_policy,
    random_policy,
    simulate,
)
from testnet.forecast import fitted_predictor
from testnet.traces import EPOCH_MONDAY, HostTrace, generate_traces

H = HOUR


def _first(task, idle, now):
    return idle[0]


def test_a_host_leaving_preempts_its_task_which_restarts_from_scratch():
    flaky = HostTrace("flaky", "x", np.array([[0.0, 1 * H], [5 * H, 100 * H]]))
    steady = HostTrace("steady", "x", np.array([[0.0, 100 * H]]))
    tasks = [SimTask(0, 0, 0.0, 2 * H), SimTask(1, 0, 0.0, 0.5 * H)]
    r = simulate("first", [flaky, steady], tasks, _first, 0.0, 100 * H)
    # Task 0 (longest first) starts on 'flaky', task 1 on 'steady' (done at 0.5 h). 'flaky'
    # leaves at 1 h: task 0 is preempted, 1 h of work is lost, and it restarts on 'steady'
    # from scratch at 1 h, finishing at 3 h.
    assert r.preemptions == 1 and r.lost_h == pytest.approx(1.0)
    assert r.completed == 2
    assert r.mean_job_makespan_h == pytest.approx(3.0)


def test_tasks_wait_when_every_host_is_busy_or_down():
    one = HostTrace("one", "x", np.array([[2 * H, 100 * H]]))
    tasks = [SimTask(0, 0, 0.0, 1 * H), SimTask(1, 0, 0.0, 1 * H)]
    r = simulate("first", [one], tasks, _first, 0.0, 100 * H)
    assert r.preemptions == 0 and r.completed == 2
    assert r.mean_job_makespan_h == pytest.approx(4.0)  # waits 2 h for the host, then 1 h + 1 h


def test_unfinished_work_is_reported_not_hidden():
    short = HostTrace("short", "x", np.array([[0.0, 1 * H]]))
    r = simulate("first", [short], [SimTask(0, 0, 0.0, 2 * H)], _first, 0.0, 10 * H)
    assert r.completed == 0 and r.preemptions == 1 and np.isnan(r.mean_job_makespan_h)


def test_workload_durations_span_ten_minutes_to_eight_hours():
    tasks = make_workload(np.random.default_rng(1), 0.0, 30 * DAY, mean_gap_s=12 * H, tasks_per_job=50)
    d = np.array([t.duration_s for t in tasks])
    assert d.min() >= 600 and d.max() <= 8 * H and len({t.job_id for t in tasks}) > 40


@pytest.fixture(scope="module")
def small_world():
    seed = 77
    fit_end = EPOCH_MONDAY + 3 * WEEK
    traces = generate_traces(80, seed=seed, duration_s=5 * WEEK)
    pred, sums = fitted_predictor(traces, EPOCH_MONDAY, fit_end, rng=np.random.default_rng(seed))
    tasks = make_workload(np.random.default_rng(seed), fit_end, fit_end + 9 * DAY, mean_gap_s=12 * H, tasks_per_job=30)
    return traces, sums, pred, tasks, fit_end


def test_policies_on_the_same_stream_rank_as_they_should(small_world):
    traces, sums, pred, tasks, t0 = small_world
    t_end = EPOCH_MONDAY + 5 * WEEK - H
    res = {
        name: simulate(name, traces, tasks, choose, t0, t_end)
        for name, choose in [
            ("random", random_policy(1)), ("on_fraction", on_fraction_policy(sums)),
            ("ours", ours_policy(traces, sums, pred)),
            ("known_law", known_law_policy(traces, sums, pred)), ("oracle", oracle_policy(traces)),
        ]
    }
    assert all(r.completed == len(tasks) for r in res.values())
    assert res["oracle"].preemptions <= res["known_law"].preemptions < res["random"].preemptions / 2
    assert res["oracle"].preemptions <= res["ours"].preemptions < res["random"].preemptions / 2
    assert res["ours"].mean_job_makespan_h < res["random"].mean_job_makespan_h
    again = simulate("ours", traces, tasks, ours_policy(traces, sums, pred), t0, t_end)
    assert again == res["ours"]  # same seed, same stream: same run


def test_a_resumable_task_continues_from_its_last_checkpoint_on_another_host():
    flaky = HostTrace("flaky", "x", np.array([[0.0, 70 * 60.0], [5 * H, 100 * H]]))
    steady = HostTrace("steady", "x", np.array([[0.0, 100 * H]]))
    tasks = [SimTask(0, 0, 0.0, 2 * H), SimTask(1, 0, 0.0, 0.5 * H)]
    asked: list[float] = []

    def first(task, idle, now):
        asked.append(task.duration_s)
        return idle[0]
    res = Resumable(interval_s=15 * 60, resume_cost_s=60, horizon_s=1.5 * H)
    r = simulate("first", [flaky, steady], tasks, first, 0.0, 100 * H, resumable=res)
    # 'flaky' leaves at 1 h 10 min: the checkpoint at 1 h is kept, 10 min are lost; the task
    # continues on 'steady' at 1 h 10 min, restores for 60 s and runs its last hour there.
    assert r.preemptions == 1 and r.resumes == 1
    assert r.lost_h == pytest.approx(10 / 60)
    assert r.mean_job_makespan_h == pytest.approx(70 / 60 + 1 / 60 + 1.0)
    assert r.short_host_placements == 1 and r.short_host_work_h == pytest.approx(1.0)
    # placement was asked for the next 1.5 h of work (or what was left), not the whole task
    assert asked == [1.5 * H, 0.5 * H, 1.0 * H]
    restart = simulate("first", [flaky, steady], tasks, _first, 0.0, 100 * H)
    assert restart.lost_h == pytest.approx(70 / 60) and restart.short_host_work_h == 0.0


def test_resumable_settings_are_checked():
    with pytest.raises(ValueError):
        Resumable(interval_s=0)

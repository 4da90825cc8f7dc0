import dataclasses

import numpy as np
import pytest

from daemon.sched.history import AvailabilityHistory
from daemon.sched.predictor import Predictor
from daemon.sched.prior import PopulationPrior
from daemon.sched.summary import AvailabilitySummary, summarize
from daemon.sched.timebase import DAY, HOUR, WEEK
from daemon.sched.weibull import Weibull
from testnet.forecast import history_at, summaries_at
from testnet.traces import EPOCH_MONDAY, generate_traces

NOW = EPOCH_MONDAY + 4 * WEEK
PRED = Predictor()


def _new_node(age_s: float) -> AvailabilitySummary:
    return summarize(AvailabilityHistory().started(NOW - age_s), NOW)


def test_a_new_node_is_forecast_by_the_population_prior():
    prior = PopulationPrior.default()
    for age_h in (0.1, 3.0, 40.0):
        got = PRED.p_up(_new_node(age_h * HOUR), NOW, 4 * HOUR)
        assert got == pytest.approx(prior.conditional_survival(age_h, 4.0), rel=1e-9)


def test_the_prior_learns_from_uptime_too():
    p = [PRED.p_up(_new_node(a * HOUR), NOW, 4 * HOUR) for a in (0.1, 2, 24, 200)]
    assert p == sorted(p) and p[-1] - p[0] > 0.2


def test_a_node_that_says_it_is_down_gets_zero_and_a_zero_horizon_gets_one():
    down = dataclasses.replace(_new_node(HOUR), up_since=None)
    assert PRED.p_up(down, NOW, HOUR) == 0.0
    assert PRED.p_up(_new_node(HOUR), NOW, 0.0) == 1.0


def test_claimed_uptime_is_capped_by_now_and_by_what_the_observer_vouches_for():
    liar = dataclasses.replace(_new_node(0.0), up_since=NOW + DAY)  # "up since tomorrow"
    assert PRED.p_up(liar, NOW, 4 * HOUR) == pytest.approx(PRED.p_up(_new_node(0.0), NOW, 4 * HOUR))
    boaster = _new_node(60 * DAY)
    honest = PRED.p_up(_new_node(HOUR), NOW, 4 * HOUR)
    assert PRED.p_up(boaster, NOW, 4 * HOUR) > honest
    assert PRED.p_up(boaster, NOW, 4 * HOUR, vouched_since=NOW - HOUR) == pytest.approx(honest)


def test_a_month_up_with_one_departure_is_forecast_like_a_server_not_a_fresh_desktop():
    """An always-on host back from a reboot: its own shape fit (one departure) is noise, but
    one departure in 600 hours up is strong evidence against every desktop-like component."""
    prior = PopulationPrior((Weibull(0.55, 35.3), Weibull(0.45, 4.16), Weibull(1.0, 720.0)))
    pred = Predictor(prior=prior)

    def rebooted(after_h: float) -> AvailabilitySummary:
        start = NOW - HOUR - after_h * HOUR - 600.0
        history = AvailabilityHistory(sessions=((start, start + after_h * HOUR),)).started(NOW - HOUR)
        return summarize(history, NOW)

    server, desktop = rebooted(600.0), rebooted(9.0)
    assert server.events == desktop.events == 1
    p_server, p_desktop = (pred.p_up(s, NOW, 8 * HOUR) for s in (server, desktop))
    assert p_server > 0.97 > 0.9 > p_desktop
    exponential_720h = float(np.exp(-8.0 / 720.0))
    assert p_server == pytest.approx(exponential_720h, abs=0.02)


def test_up_time_without_a_departure_is_gossiped_but_counted_once():
    fresh = _new_node(300 * HOUR)
    assert fresh.events == 0 and fresh.exposure_h == pytest.approx(300.0)
    # All of it is the current session, which the forecast already weighs by its age: the
    # prior alone, conditioned on 300 h up, exactly as for a node that never said its exposure.
    silent = dataclasses.replace(fresh, exposure_h=0.0)
    assert PRED.p_up(fresh, NOW, 4 * HOUR) == pytest.approx(PRED.p_up(silent, NOW, 4 * HOUR), rel=1e-12)


def test_a_node_without_summary_but_vouched_up_is_forecast_from_the_prior():
    assert PRED.p_up(None, NOW, HOUR) == 0.0
    vouched = PRED.p_up(None, NOW, HOUR, vouched_since=NOW - 2 * HOUR)
    assert vouched == pytest.approx(PRED.p_up(_new_node(2 * HOUR), NOW, HOUR))


def test_time_of_week_matters_for_an_office_desktop():
    trace = next(t for t in generate_traces(20, seed=8, mix={"office": 1.0}) if t.tz_offset_s == 0)
    s = summarize(history_at(trace, EPOCH_MONDAY, NOW), NOW)
    monday = NOW  # 4 weeks after a Monday 00:00 UTC is a Monday 00:00 UTC
    morning = dataclasses.replace(s, up_since=monday + 8.5 * HOUR)
    afternoon = dataclasses.replace(s, up_since=monday + 13.5 * HOUR)  # same 2 h uptime, later
    p_morning = PRED.p_up(morning, monday + 10.5 * HOUR, 4 * HOUR)  # 10:30 -> 14:30
    p_afternoon = PRED.p_up(afternoon, monday + 15.5 * HOUR, 4 * HOUR)  # 15:30 -> 19:30
    assert p_morning > 0.6 and p_afternoon < 0.35


def test_batch_and_single_forecasts_agree():
    traces = generate_traces(12, seed=9)
    sums = summaries_at(traces, EPOCH_MONDAY, NOW)
    pred = Predictor(prior=PopulationPrior.from_summaries(sums))
    many = pred.p_up_many(sums, NOW, 3 * HOUR)
    assert [pred.p_up(s, NOW, 3 * HOUR) for s in sums] == pytest.approx(list(many), abs=1e-12)


def test_prior_from_summaries_ignores_order():
    sums = summaries_at(generate_traces(40, seed=5), EPOCH_MONDAY, NOW)
    assert PopulationPrior.from_summaries(sums) == PopulationPrior.from_summaries(sums[::-1])
    assert len(PopulationPrior.from_summaries(sums[:2]).components) == 3  # too few: the default


def test_bad_horizons_are_refused():
    with pytest.raises(ValueError):
        PRED.p_up(_new_node(HOUR), NOW, -1.0)
    with pytest.raises(ValueError):
        PRED.p_up(_new_node(HOUR), NOW, float("nan"))


def test_predictor_configuration_round_trips_so_a_committee_can_pin_it():
    import msgpack

    from testnet.forecast import fitted_predictor

    traces = generate_traces(60, seed=10, duration_s=4 * WEEK + DAY)
    pred, sums = fitted_predictor(traces, EPOCH_MONDAY, NOW, rng=np.random.default_rng(10))
    wire = msgpack.unpackb(msgpack.packb(pred.to_wire()), raw=False)
    back = Predictor.from_wire(wire)
    assert back == pred
    assert np.array_equal(back.p_up_many(sums, NOW, 4 * HOUR), pred.p_up_many(sums, NOW, 4 * HOUR))
    with pytest.raises(ValueError):
        Predictor.from_wire({"prior": [[0.5, -1.0]]})
    with pytest.raises(ValueError):
        Predictor.from_wire({"prior": "many"})


def test_hosts_that_never_left_join_the_prior():
    """A cluster where most hosts had no departure: the prior must not describe only the
    flaky few, or every unknown host is forecast as one of them."""
    from daemon.sched.profile import WeekProfile
    from daemon.sched.summary import AvailabilitySummary

    flaky = [AvailabilitySummary(0.6, 5.0, 4, 40.0, 0.5, NOW, WeekProfile.flat()) for _ in range(5)]
    steady = [AvailabilitySummary(None, None, 0, 600.0, 1.0, NOW, WeekProfile.flat()) for _ in range(20)]
    prior = PopulationPrior.from_summaries(flaky + steady)
    means = sorted(c.mean_h for c in prior.components)
    assert means[0] < 20 and means[-1] >= 600  # both kinds are there
    assert PopulationPrior.from_summaries(flaky) != prior
    p_new = Predictor(prior=prior).p_up(None, NOW, 12 * HOUR, vouched_since=NOW - 24 * HOUR)
    p_flaky_only = Predictor(prior=PopulationPrior.from_summaries(flaky)).p_up(
        None, NOW, 12 * HOUR, vouched_since=NOW - 24 * HOUR)
    assert p_new > p_flaky_only


def test_long_sessions_are_not_capped_flat():
    """Past 90 days, a longer session still forecasts (slightly) better: no common cap."""
    pred = Predictor()
    ages_d = np.array([100.0, 200.0, 400.0])
    p = pred.p_up_many([None] * 3, NOW, 12 * HOUR, vouched_since=NOW - ages_d * 24 * HOUR)
    assert p[0] < p[1] < p[2]

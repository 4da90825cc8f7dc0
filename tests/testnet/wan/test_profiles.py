"""The profiles' ranges and the relay's delay math (pure, seeded)."""

from __future__ import annotations

import random
import statistics

import pytest

from testnet.wan.profiles import (MSS, PROFILES, RTO_FLOOR, DelayLine, ProfileError, draw_access,
                                  get, handshake_done, pair_one_way_ms)


@pytest.mark.parametrize("name,lo,hi", [("continent", 20, 80), ("planet", 50, 300)])
def test_every_pair_round_trip_falls_in_the_profile_range(name, lo, hi):
    profile = get(name)
    rng = random.Random(7)
    access = draw_access(profile, 200, rng)
    rtts = [2 * pair_one_way_ms(a, b) for a in access for b in access]
    assert lo <= min(rtts) and max(rtts) + 2 * profile.jitter_ms <= hi
    # Spread over the range, not bunched at one end.
    assert min(rtts) < lo + 0.2 * (hi - lo) and max(rtts) > hi - 0.2 * (hi - lo)
    assert profile.rtt_range_ms()[0] >= lo and profile.rtt_range_ms()[1] <= hi
    # what the simulators draw a client's round trip from is that same advertised range
    assert profile.round_trip_ms == (lo, hi)


def test_planet_loses_half_a_percent_and_lan_is_not_relayed():
    assert get("planet").loss == 0.005 and get("planet").relayed
    assert not get("lan").relayed and get("continent").loss == 0.0
    assert set(PROFILES) >= {"lan", "continent", "planet"}


def test_unknown_profile_is_one_line_naming_the_choices():
    with pytest.raises(ProfileError, match="unknown --wan profile 'mars'; choose one of lan, "):
        get("mars")


def test_a_line_adds_its_delay_and_never_reorders():
    line = DelayLine(40.0, 10.0, 0.0, random.Random(1))
    dues = [line.schedule(t * 0.001, 100) for t in range(1000)]
    assert dues == sorted(dues)
    waits = [d - t * 0.001 for t, d in enumerate(dues)]
    assert min(waits) >= 0.040 and max(waits) <= 0.050 + 1e-9
    assert 0.043 < statistics.mean(waits) < 0.047  # uniform jitter: ~5 ms on average


def test_loss_costs_a_retransmission_timeout_per_lost_segment_at_the_profile_rate():
    rng = random.Random(3)
    line = DelayLine(50.0, 0.0, 0.005, rng)
    n = 40_000
    late = 0
    for i in range(n):
        t = i * 10.0  # far apart: no ordering interaction
        due = line.schedule(t, MSS)
        assert due - t in (pytest.approx(0.050), pytest.approx(0.050 + 0.100 + RTO_FLOOR))
        late += due - t > 0.1
    assert late == line.retransmissions
    assert 0.004 < late / n < 0.006
    # A big chunk spans many segments, so it is far likelier to meet a loss.
    big = DelayLine(50.0, 0.0, 0.005, random.Random(3))
    hits = sum(big.schedule(i * 10.0, 100 * MSS) - i * 10.0 > 0.1 for i in range(2000))
    assert hits / 2000 > 0.3


def test_first_bytes_wait_for_the_handshake_a_real_link_needs():
    line = DelayLine(30.0, 0.0, 0.0, random.Random(0))
    syn = line.syn_delay()
    assert syn == pytest.approx(0.030)
    line.hold_until(handshake_done(100.0, line.one_way, syn))
    assert line.schedule(100.0, 10) == pytest.approx(100.090)  # SYN, SYN-ACK, data
    assert line.schedule(101.0, 10) == pytest.approx(101.030)


def test_lost_syns_wait_a_second_each():
    line = DelayLine(30.0, 0.0, 0.5, random.Random(2))
    delays = [line.syn_delay() for _ in range(200)]
    assert all(round(d - 0.030, 6) == int(round(d - 0.030, 6)) for d in delays)
    assert any(d > 1 for d in delays) and any(d < 1 for d in delays)


def test_bad_line_parameters_are_refused():
    with pytest.raises(ValueError):
        DelayLine(-1.0, 0.0, 0.0, random.Random(0))
    with pytest.raises(ValueError):
        DelayLine(1.0, 0.0, 1.0, random.Random(0))

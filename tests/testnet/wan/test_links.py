"""Each node's access line: drawn from the profile (seeded), set by the user, parsed (pure)."""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest

from testnet.wan.links import (LinkError, NodeLink, draw, draw_uplink, override, parse_rate,
                               settings)
from testnet.wan.profiles import PROFILES, get


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_lines_fall_in_the_profile_and_a_seed_replays_them(name):
    p = get(name)
    a = draw(p, 300, random.Random(4))
    assert a == draw(p, 300, random.Random(4))
    if name != "lan":  # lan's lines are all alike: nothing to draw
        assert a != draw(p, 300, random.Random(5))
    for link in a:
        assert p.uplink_mbit[0] * 1000 - 1 <= link.up_kbit <= p.uplink_mbit[1] * 1000 + 1
        ratio = link.down_kbit / link.up_kbit
        assert p.down_ratio[0] - 0.01 <= ratio <= p.down_ratio[1] + 0.01


def test_lan_lines_are_fast_and_equal_and_planet_spans_dsl_to_cable():
    assert set(draw(get("lan"), 20, random.Random(1))) == {NodeLink(1_000_000, 1_000_000)}
    ups = [link.up_kbit for link in draw(get("planet"), 2000, random.Random(2))]
    # log-uniform over 0.5-20 Mbit/s: the median near the geometric mean (~3.2 Mbit/s), a
    # quarter of the nodes under ~1.25 Mbit/s, a quarter over ~8
    assert 2800 < statistics.median(ups) < 3600
    quarter = sorted(ups)[len(ups) // 4]
    assert 1100 < quarter < 1400 and min(ups) < 600 and max(ups) > 19000
    downs = [link.down_kbit / link.up_kbit for link in draw(get("planet"), 500, random.Random(3))]
    assert min(downs) >= 2 - 0.01 and max(downs) <= 8 + 0.01  # home lines: down 2-8x up


def test_simulators_draw_the_same_uplinks_from_a_numpy_generator():
    p = get("planet")
    ups = [draw_uplink(p, np.random.default_rng(9), unit=1e6 / 8) for _ in range(3)]
    assert ups[0] == ups[1] == ups[2]  # one draw per call: same generator state, same line
    rng = np.random.default_rng(9)
    many = [draw_uplink(p, rng, unit=1e6 / 8) for _ in range(500)]
    assert 0.5e6 / 8 <= min(many) and max(many) <= 20e6 / 8
    assert math.isclose(statistics.median(many), math.sqrt(0.5e6 * 20e6) / 8, rel_tol=0.15)


def test_the_user_sets_lines_by_node_and_the_rest_stay_drawn():
    drawn = draw(get("planet"), 4, random.Random(1))
    up = settings(["node2=1mbit", "3=500kbit"], "--uplink", 4)
    down = settings(["node2=8mbit"], "--downlink", 4)
    assert up == {2: 1000, 3: 500} and down == {2: 8000}
    lines = override(drawn, up, down)
    assert lines[:2] == drawn[:2] and lines[2] == NodeLink(1000, 8000)
    assert lines[3] == NodeLink(500, drawn[3].down_kbit)
    assert lines[2].describe() == "1/8 Mbit/s" and NodeLink(820, 5_800).describe() == \
        "0.82/5.8 Mbit/s" and NodeLink(1_000_000, 1_000_000).describe() == "1000/1000 Mbit/s"


@pytest.mark.parametrize("text,kbit", [("1mbit", 1000), ("500kbit", 500), ("2.5mbit", 2500),
                                       ("1gbit", 1_000_000), ("20", 20_000), (" 3 MBIT ", 3000)])
def test_rates_parse_as_tc_writes_them(text, kbit):
    assert parse_rate(text) == kbit


@pytest.mark.parametrize("items,message", [
    (["node2"], "--uplink 'node2': expected NODE=RATE, e.g. --uplink node2=1mbit"),
    (["nodeX=1mbit"], "expected NODE=RATE"),
    (["node9=1mbit"], "there is no node9 in a testnet of 4 nodes"),
    (["node1=fast"], "rate 'fast': expected a number with kbit, mbit or gbit"),
    (["node1=10kbit"], "must be between 64kbit and 10gbit"),
    (["node1=1mbit", "1=2mbit"], "--uplink: node1 is set twice"),
])
def test_bad_settings_are_one_line_saying_how_to_fix_them(items, message):
    with pytest.raises(LinkError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        settings(items, "--uplink", 4)
    assert "\n" not in str(err.value)

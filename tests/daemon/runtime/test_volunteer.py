"""Volunteer preferences: the pure admission rule and the CPU accounting that feeds it."""

from __future__ import annotations

from datetime import datetime, time

import pytest

from daemon.runtime.volunteer import (CpuSample, HoursWindow, PrefsError, VolunteerPrefs,
                                      load_between, may_run_now, parse_hours, parse_pid_stat,
                                      parse_proc_stat, read_cpu_sample)

NIGHT = parse_hours("22:00-07:00")


def at(hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, 1, hh, mm)


def test_parse_hours():
    assert NIGHT == HoursWindow(time(22, 0), time(7, 0))
    assert parse_hours("") is None
    for bad in ("22-07", "24:00-01:00", "10:00 - 11:00", "9:00-17:00"):
        with pytest.raises(PrefsError, match="hours must look like"):
            parse_hours(bad)


@pytest.mark.parametrize("window, now, inside", [
    ("22:00-07:00", time(23, 30), True), ("22:00-07:00", time(3, 0), True),
    ("22:00-07:00", time(7, 0), False), ("22:00-07:00", time(12, 0), False),
    ("22:00-07:00", time(22, 0), True), ("09:00-17:30", time(17, 29), True),
    ("09:00-17:30", time(17, 30), False), ("00:00-00:00", time(12, 0), True),
])
def test_windows_wrap_past_midnight(window, now, inside):
    hours = parse_hours(window)
    assert hours is not None and hours.contains(now) is inside


def test_workers_is_the_floor_of_the_share_and_at_least_one():
    assert VolunteerPrefs(cpu_share=0.5).workers(8) == 4
    assert VolunteerPrefs(cpu_share=0.3).workers(8) == 2
    assert VolunteerPrefs(cpu_share=0.1).workers(2) == 1
    assert VolunteerPrefs(cpu_share=1.0).workers(3) == 3
    with pytest.raises(PrefsError):
        VolunteerPrefs(cpu_share=0)


def test_any_time_and_not_idle_only_always_runs():
    assert may_run_now(VolunteerPrefs(), at(12), None) == (True, "accepting tasks")


def test_outside_hours_says_so():
    ok, reason = may_run_now(VolunteerPrefs(hours=NIGHT), at(12, 5), 0.0)
    assert not ok and reason == "outside the volunteer's hours 22:00-07:00 (now 12:05)"
    assert may_run_now(VolunteerPrefs(hours=NIGHT), at(23), None)[0]


def test_idle_only_needs_a_measurement_below_the_threshold():
    prefs = VolunteerPrefs(idle_only=True, idle_threshold=0.2)
    assert may_run_now(prefs, at(12), None) == (
        False, "idle-only: measuring whether the machine is idle")
    assert may_run_now(prefs, at(12), 0.35) == (
        False, "idle-only: other programs use 35% of the CPU (threshold 20%)")
    assert may_run_now(prefs, at(12), 0.05) == (
        True, "machine idle (other programs use 5% of the CPU)")


def test_hours_are_checked_before_idleness():
    prefs = VolunteerPrefs(hours=NIGHT, idle_only=True)
    assert may_run_now(prefs, at(12), 0.0)[1].startswith("outside the volunteer's hours")


def test_load_between_subtracts_our_own_cpu_time():
    before = CpuSample(total=1000, busy=100, own=50)
    # 400 ticks passed; 300 were busy, 200 of them ours: others used 100 / 400.
    assert load_between(before, CpuSample(1400, 400, 250)) == 0.25
    assert load_between(before, CpuSample(1400, 400, 400)) == 0.0  # clamped
    assert load_between(before, before) is None


def test_proc_parsers():
    stat = "cpu  100 5 50 800 20 1 2 3 0 0\ncpu0 50 2 25 400 10 0 1 1 0 0\n"
    assert parse_proc_stat(stat) == (981, 981 - 800 - 20)
    pid = "1234 (python -m x) S 1 2 3 4 5 6 7 8 9 10 111 22 7 8 20 0 1 0"
    assert parse_pid_stat(pid) == 133
    assert parse_pid_stat(pid, children=True) == 148
    with pytest.raises(ValueError):
        parse_proc_stat("intr 5\n")


def test_read_cpu_sample_reads_this_machine():
    sample = read_cpu_sample([999_999_999])  # a pid that does not exist is skipped
    assert sample.total > sample.busy >= 0 and sample.own >= 0

"""``daemon.tick.RestingTick`` in virtual time: how often a loop ticks busy and at rest, and
which input ends a rest."""

from __future__ import annotations

import pytest
import trio

from daemon.tick import RestingTick


async def _loop(pace: RestingTick, ticks: list[float], resting: list[bool]) -> None:
    while True:
        await pace.wait()
        ticks.append(trio.current_time())
        pace.settle(resting[0])


async def test_a_busy_loop_ticks_at_the_short_interval_and_a_resting_one_at_the_long(
        autojump_clock: object) -> None:
    pace, ticks, resting = RestingTick(0.1, 1.0), [], [False]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_loop, pace, ticks, resting)
        await trio.sleep(1.05)
        assert len(ticks) == 10, ticks
        resting[0] = True
        await trio.sleep(0.1)  # the tick that sees it settles to rest
        ticks.clear()
        await trio.sleep(10)
        assert 9 <= len(ticks) <= 11, ticks
        assert pace.resting and pace.interval == 1.0
        nursery.cancel_scope.cancel()


async def test_input_ends_a_rest_at_once_but_does_not_hurry_a_busy_loop(
        autojump_clock: object) -> None:
    pace, ticks, resting = RestingTick(0.1, 1.0), [], [True]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_loop, pace, ticks, resting)
        await trio.sleep(0.55)  # resting from the first tick at 0.1: next due at 1.1
        ticks.clear()
        resting[0] = False  # the tick the input brings finds work in flight
        pace.wake()
        assert pace.interval == 1.0  # the wait being cut short is the long one
        await trio.sleep(0.001)
        assert ticks == [pytest.approx(0.55)]
        ticks.clear()
        pace.wake()  # busy now: input waits for the next short tick, due at 0.65
        await trio.sleep(0.05)
        pace.wake()
        await trio.sleep(0.001)
        assert ticks == [], ticks
        await trio.sleep(0.1)
        assert len(ticks) == 1 and ticks[0] == pytest.approx(0.65), ticks
        nursery.cancel_scope.cancel()


async def test_wake_with_a_check_ends_a_rest_only_when_there_is_work(
        autojump_clock: object) -> None:
    pace, ticks, resting = RestingTick(0.1, 1.0), [], [True]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_loop, pace, ticks, resting)
        await trio.sleep(0.5)
        ticks.clear()
        pace.wake(lambda: False)
        await trio.sleep(0.001)
        assert ticks == [] and pace.resting
        pace.wake(lambda: True)
        await trio.sleep(0.001)
        assert ticks == [pytest.approx(0.501)]
        nursery.cancel_scope.cancel()


async def test_run_now_runs_the_next_tick_at_once_even_when_busy(autojump_clock: object) -> None:
    pace, ticks, resting = RestingTick(0.5, 2.0), [], [False]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_loop, pace, ticks, resting)
        await trio.sleep(0.6)  # ticked at 0.5, next due at 1.0
        ticks.clear()
        pace.run_now()
        await trio.sleep(0.001)
        assert ticks == [pytest.approx(0.6)]
        nursery.cancel_scope.cancel()


def test_the_intervals_must_make_sense() -> None:
    with pytest.raises(ValueError, match="busy_s <= rest_s"):
        RestingTick(1.0, 0.1)
    with pytest.raises(ValueError):
        RestingTick(0.0, 1.0)

"""The wait between a service loop's ticks: short while it has work, long at rest, and over
at once when work comes to a resting loop.

A tick loop that exists to flush queued work and run timers (the committees' replicas, the
soft state's anti-entropy, the job member's proposals) needs a short tick only while it has
something in flight. At rest its timers are seconds apart, so it waits ``rest_s``; input
(a message, a local write, a submission) calls ``wake`` and the next tick runs now instead
of up to ``rest_s`` later. A busy loop is not woken: input then waits for the next short tick,
so what arrives meanwhile goes out together. On 30 idle daemons sharing two cores, ticks at
the busy interval were a third of each daemon's wake-ups.

The loop's shape::

    tick = RestingTick(busy_s=0.1, rest_s=1.0)
    while True:
        await tick.wait()
        ...one tick...
        tick.settle(resting=nothing_in_flight())

and input handlers call ``tick.wake()`` (or ``tick.wake(has_work)`` when input does not
always mean work), or ``tick.run_now()`` for input that must not wait for the busy tick.
"""

from __future__ import annotations

from collections.abc import Callable

import trio


class RestingTick:
    def __init__(self, busy_s: float, rest_s: float) -> None:
        if not 0 < busy_s <= rest_s:
            raise ValueError(f"need 0 < busy_s <= rest_s, got {busy_s} and {rest_s}")
        self.busy_s = busy_s
        self.rest_s = rest_s
        self.resting = False
        self.interval = busy_s
        """What the next (or current) ``wait`` waits at most, ``busy_s`` or ``rest_s``: a loop
        that measures its own stalls counts them against this (waking does not change it)."""
        self._input = trio.Event()

    async def wait(self) -> None:
        """Until ``interval`` has passed, or a resting loop is woken."""
        with trio.move_on_after(self.interval):
            await self._input.wait()
        self._input = trio.Event()

    def settle(self, resting: bool) -> None:
        """After a tick: whether the loop has nothing in flight, which sets the next wait."""
        self.resting = resting
        self.interval = self.rest_s if resting else self.busy_s

    def run_now(self) -> None:
        """The next tick runs now, busy or resting (work that must not wait for the short
        tick: a committed batch that freed slots to place)."""
        self.resting = False
        self._input.set()

    def wake(self, has_work: Callable[[], bool] | None = None) -> None:
        """Input came: a resting loop ticks now if ``has_work()`` says there is work (no
        ``has_work``: input is work). A busy loop ticks within ``busy_s`` anyway."""
        if self.resting and (has_work is None or has_work()):
            self.resting = False
            self._input.set()

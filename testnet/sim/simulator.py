"""A seeded, single-threaded discrete-event simulator for many sans-I/O nodes.

Theory of operation
-------------------
Virtual time is a float of seconds. An event heap orders message deliveries, timers and node
ticks by (time, insertion number), so equal times resolve in a deterministic order. All
randomness comes from one ``random.Random(seed)``: the same seed replays the same run, event
for event, which is how a failing seed is debugged.

A node is any object with the ``Process`` methods. The simulator knows nothing about CRDTs or
PBFT; an adapter per protocol (in ``testnet``) wraps the pure core, turns its actions into
``sim.send`` calls, and keeps whatever the core would persist so a crash can keep or lose it.

Node life cycle: ``crash`` (messages to it are lost, its ticks stop; ``Process.on_crash``),
``restart`` (``Process.on_restart(keep_state)``), ``pause`` / ``resume`` (like SIGSTOP /
SIGCONT: messages to a paused node wait in its inbox and arrive on resume).

After every event the registered invariants run; a violation raises ``InvariantViolation``
naming the seed, the virtual time and the step, so ``Simulation(seed)`` replays it.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from testnet.sim.network import Network, NodeName


class Process(Protocol):
    def on_message(self, sim: "Simulation", src: NodeName, msg: Any) -> None: ...
    def on_tick(self, sim: "Simulation", now: float) -> None: ...
    def on_crash(self, sim: "Simulation") -> None: ...
    def on_restart(self, sim: "Simulation", keep_state: bool) -> None: ...


class NodeState(Enum):
    UP = "up"
    CRASHED = "crashed"
    PAUSED = "paused"


class InvariantViolation(AssertionError):
    """An invariant failed; the message carries the seed to replay."""


@dataclass
class Stats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    bytes_sent: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


@dataclass(order=True)
class _Event:
    time: float
    order: int
    kind: str = field(compare=False)
    node: NodeName = field(compare=False)
    payload: Any = field(compare=False, default=None)


def message_size(msg: Any) -> int:
    """Bytes a message would take on the wire: ``len`` of bytes, else its ``wire_size()``."""
    if isinstance(msg, (bytes, bytearray)):
        return len(msg)
    size = getattr(msg, "wire_size", None)
    return size() if callable(size) else 0


class Simulation:
    def __init__(self, seed: int, network: Network | None = None, tick_interval: float = 0.05):
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = network or Network()
        self.tick_interval = tick_interval
        self.now = 0.0
        self.steps = 0
        self.stats = Stats()
        self.nodes: dict[NodeName, Process] = {}
        self.state: dict[NodeName, NodeState] = {}
        self._heap: list[_Event] = []
        self._order = 0
        self._paused_inbox: dict[NodeName, list[tuple[NodeName, Any]]] = {}
        self._invariants: list[Callable[["Simulation"], str | None]] = []
        self.log: list[str] = []
        self.keep_log = False

    # -- set-up ---------------------------------------------------------------------------------

    def add_node(self, name: NodeName, process: Process, tick_offset: float | None = None) -> None:
        if name in self.nodes:
            raise ValueError(f"node {name} already exists")
        self.nodes[name] = process
        self.state[name] = NodeState.UP
        offset = self.rng.uniform(0, self.tick_interval) if tick_offset is None else tick_offset
        self._push(self.now + offset, "tick", name)

    def add_invariant(self, check: Callable[["Simulation"], str | None]) -> None:
        """``check(sim)`` returns None when all is well, else a description of the violation."""
        self._invariants.append(check)

    # -- what nodes do --------------------------------------------------------------------------

    def send(self, src: NodeName, dst: NodeName, msg: Any, kind: str = "") -> None:
        """Put a message on the network; its fate (loss, copies, delays) is drawn now."""
        self.stats.sent += 1
        self.stats.bytes_sent += message_size(msg)
        if kind:
            self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        delays = self.network.fate(self.rng, src, dst)
        if not delays:
            self.stats.dropped += 1
        if len(delays) > 1:
            self.stats.duplicated += 1
        for d in delays:
            self._push(self.now + d, "deliver", dst, (src, msg))

    def broadcast(self, src: NodeName, msg: Any, kind: str = "", include_self: bool = False) -> None:
        for dst in self.nodes:
            if dst != src or include_self:
                self.send(src, dst, msg, kind)

    def set_timer(self, node: NodeName, delay: float, payload: Any) -> None:
        """Call ``process.on_timer(sim, payload)`` after ``delay`` (if the node is still up)."""
        self._push(self.now + delay, "timer", node, payload)

    # -- faults ---------------------------------------------------------------------------------

    def crash(self, name: NodeName) -> None:
        if self.state[name] is NodeState.CRASHED:
            return
        self.state[name] = NodeState.CRASHED
        self._paused_inbox.pop(name, None)
        self.nodes[name].on_crash(self)
        self._trace(f"crash {name}")

    def restart(self, name: NodeName, keep_state: bool = True) -> None:
        if self.state[name] is not NodeState.CRASHED:
            raise ValueError(f"{name} is not crashed")
        self.state[name] = NodeState.UP
        self.nodes[name].on_restart(self, keep_state)
        self._push(self.now + self.rng.uniform(0, self.tick_interval), "tick", name)
        self._trace(f"restart {name} keep_state={keep_state}")

    def pause(self, name: NodeName) -> None:
        if self.state[name] is NodeState.UP:
            self.state[name] = NodeState.PAUSED
            self._paused_inbox.setdefault(name, [])
            self._trace(f"pause {name}")

    def resume(self, name: NodeName) -> None:
        if self.state[name] is NodeState.PAUSED:
            self.state[name] = NodeState.UP
            for src, msg in self._paused_inbox.pop(name, []):
                self._push(self.now, "deliver", name, (src, msg))
            self._push(self.now, "tick", name)
            self._trace(f"resume {name}")

    def is_up(self, name: NodeName) -> bool:
        return self.state[name] is NodeState.UP

    # -- running --------------------------------------------------------------------------------

    def _push(self, time: float, kind: str, node: NodeName, payload: Any = None) -> None:
        self._order += 1
        heapq.heappush(self._heap, _Event(time, self._order, kind, node, payload))

    def _trace(self, text: str) -> None:
        if self.keep_log:
            self.log.append(f"{self.now:10.4f} #{self.steps} {text}")

    def step(self) -> bool:
        """Run one event. False when nothing is left to do."""
        if not self._heap:
            return False
        ev = heapq.heappop(self._heap)
        self.now = max(self.now, ev.time)
        self.steps += 1
        state = self.state.get(ev.node)
        proc = self.nodes.get(ev.node)
        if proc is None or state is NodeState.CRASHED:
            if ev.kind == "deliver":
                self.stats.dropped += 1
        elif ev.kind == "tick":
            if state is NodeState.UP:
                proc.on_tick(self, self.now)
                self._push(self.now + self.tick_interval, "tick", ev.node)
        elif ev.kind == "deliver":
            src, msg = ev.payload
            if state is NodeState.PAUSED:
                self._paused_inbox[ev.node].append((src, msg))
            else:
                self.stats.delivered += 1
                self._trace(f"deliver {src} -> {ev.node}: {type(msg).__name__}")
                proc.on_message(self, src, msg)
        elif ev.kind == "timer":
            if state is NodeState.UP:
                proc.on_timer(self, ev.payload)  # type: ignore[attr-defined]
        self._check()
        return True

    def _check(self) -> None:
        for check in self._invariants:
            problem = check(self)
            if problem:
                raise InvariantViolation(
                    f"seed {self.seed}: invariant violated at t={self.now:.4f}s, step "
                    f"{self.steps}: {problem} (replay: Simulation(seed={self.seed}))"
                )

    def run_until(self, time: float, stop: Callable[[], bool] | None = None) -> bool:
        """Run events up to virtual ``time``; returns True if ``stop()`` became true first."""
        while self._heap and self._heap[0].time <= time:
            self.step()
            if stop is not None and stop():
                return True
        self.now = max(self.now, time)
        return stop() if stop is not None else False

    def run_for(self, duration: float, stop: Callable[[], bool] | None = None) -> bool:
        return self.run_until(self.now + duration, stop)


def replayable(seed: int, run: Callable[[int], None]) -> None:
    """Run ``run(seed)``; if it fails, re-raise with the seed in the message so it replays."""
    try:
        run(seed)
    except InvariantViolation:
        raise
    except Exception as err:
        raise AssertionError(f"seed {seed} failed: {type(err).__name__}: {err} "
                             f"(replay with this seed)") from err

"""Error feedback across rounds in real FL jobs: the planner's side (pure).

A lossy level drops part of each update; error feedback (EF-SGD) adds what was dropped to the
same client's next update, so nothing is lost over rounds, only delayed. In a real job the
residual is made by the task (``daemon/fl/sandbox/fl_task.py``): in round ``t`` the task for
client ``c`` sends ``Q(v)``, ``v = (local - global) + e_{t-1}``, and keeps ``e_t = v -
dequant(Q(v))`` on its volunteer as a sticky file (``protocol.sticky``). The task is
deterministic, so every honest replica keeps the same bytes, and the certified output's head
names them (``"ef": {"sha256", "size", ...}``).

This module decides what round ``t+1``'s input for ``c`` says about it:

- ``residual_after``: from a certified result, the residual it left and its holders (the
  workers whose certified result named it).
- ``plan_feedback``: the next input's part: ``ef=new`` (no residual yet, or reset) or
  ``ef=<digest>`` with the sticky file and the holders still alive (at most
  ``sticky.MAX_HOLDERS``). The residual is reset (zero; the history says why) when no holder
  is a live volunteer any more, or the client's last task named a residual and failed (its
  holders may not serve it: a task that cannot get it crashes on every volunteer).
- ``task_input``: the input bytes: a sticky envelope when EF is on, the plain line otherwise.

What it costs: one float32 copy of the model per client on each volunteer that ran its latest
round (the kept file; a worker keeps its latest 64 pinned), and a transfer of it only when
placement puts the client's task on a volunteer that does not hold it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from daemon.fl.params import FLError
from protocol import sticky

RESIDUAL_FILE = "residual"
"""The task reads it as ``sticky/residual`` (``fl_task.RESIDUAL``)."""
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Residual:
    """A client's error-feedback residual: which bytes, and who holds them."""

    sha256: str
    size: int
    holders: tuple[str, ...]
    round: int
    """The round whose certified task left it."""

    def to_wire(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "holders": list(self.holders),
                "round": self.round}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any] | None) -> Residual | None:
        if not wire:
            return None
        return cls(str(wire["sha256"]), int(wire["size"]),
                   tuple(str(h) for h in wire["holders"]), int(wire["round"]))


@dataclass(frozen=True)
class FeedbackPlan:
    """One client's error feedback in its next task."""

    token: str
    """``ef=new`` or ``ef=<sha256 hex>``, appended to the task's input line."""
    file: sticky.StickyFile | None
    reset: str | None = None
    """Why a residual the client had is dropped (None: nothing dropped)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"residual": None if self.file is None else self.file.sha256.hex(),
                               "holders": [] if self.file is None else list(self.file.holders)}
        if self.reset:
            out["reset"] = self.reset
        return out


def residual_after(head: Mapping[str, Any], workers: Collection[str], rnd: int,
                   model_bytes: int) -> Residual | None:
    """The residual a certified result left (None if its head names none, or one that cannot
    be this model's: ``FLError`` for a malformed one, since the certificate covers the head)."""
    ef = head.get("ef")
    if ef is None:
        return None
    if not isinstance(ef, dict) or not isinstance(ef.get("sha256"), str) or not _HEX.match(
            ef["sha256"]) or ef.get("size") != model_bytes:
        raise FLError(f"the task's error-feedback record {str(ef)[:120]} is not a residual of"
                      f" this model ({model_bytes:,} bytes)")
    holders = tuple(sorted(w for w in workers if isinstance(w, str)))
    if not holders:
        return None  # nobody known to hold it: the next round starts afresh
    return Residual(ef["sha256"], model_bytes, holders, rnd)


def plan_feedback(residual: Residual | None, live: Collection[str], *,
                  last_failed: bool = False) -> FeedbackPlan:
    """What the client's next task says about its residual; ``live``: the volunteers now."""
    if residual is None:
        return FeedbackPlan("ef=new", None)
    if last_failed:
        return FeedbackPlan("ef=new", None, f"its last task, which named the residual of round"
                            f" {residual.round}, failed: error feedback reset")
    alive = [h for h in residual.holders if h in live]
    if not alive:
        gone = ", ".join(h[-8:] for h in residual.holders)
        return FeedbackPlan("ef=new", None, f"the volunteers holding its residual of round"
                            f" {residual.round} ({gone}) are gone: error feedback reset")
    file = sticky.StickyFile(RESIDUAL_FILE, bytes.fromhex(residual.sha256), residual.size,
                             tuple(alive[:sticky.MAX_HOLDERS]))
    return FeedbackPlan(f"ef={residual.sha256}", file)


def task_input(line: str, plan: FeedbackPlan | None, keep: int) -> str:
    """The client's task input: ``line`` alone without EF, else a sticky envelope (one line of
    ASCII, ``protocol.sticky``) with the residual's token on the line, its file, and room to
    keep the next one (``keep`` bytes: the float32 model)."""
    if plan is None:
        return line
    if keep <= 0:
        raise FLError("error feedback needs room for the residual: keep is the float32"
                      " model's bytes")
    files = () if plan.file is None else (plan.file,)
    return sticky.StickyInput(f"{line} {plan.token}".encode(), files, keep).encode().decode()

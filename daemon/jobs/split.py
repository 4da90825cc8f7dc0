"""A large job split across shards: the plan, the whole job's id, and its view (pure).

Theory of operation
-------------------
A job lives in one shard's ledger, so one committee orders all its placements and results.
On a network of several shards, a large job (``[placement] shards``, ``auto`` by default) is
submitted as N *parts*, one per shard: part ``k`` is an ordinary job of the contiguous tasks
``first .. first + count - 1`` with every other setting (module, argv, limits, replicas,
quorum, deadline ...) exactly as the job file asks. Each part's id still follows from its
submitter's key and its own ``Submit`` (``daemon.ledger.records.job_id``), and its nonce is
chosen so the id falls in the part's shard (``shard = id mod shards``): any node finds a part's
committee from the part's id alone, as for any job.

The *whole* job's id is a hash of its parts (ids and task ranges, in order, ``whole_id``), so a
result directory's ``job.json`` lists the parts and anyone can check, offline, that they make
up the id the user was given and that every certificate belongs to one of them (``novacron
verify``). The submitter keeps the whole -> parts record in its SQLite database; the parts are
not derivable from the whole id alone (that would need a directory record on some committee),
which matters little: results, logs and certificates are kept by the submitting node anyway.

The whole job's status is the parts' statuses combined (``combine``): counts added, task
indices shifted back to the job's own, and each part's state and any error listed, so a part
that failed, was cancelled or cannot be reached is shown, never hidden.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.errors import DaemonError

AUTO_PART_TASKS = 1_000
"""``shards = "auto"`` splits a job only into parts of at least this many tasks: below it one
committee orders a job's placements and results faster than the volunteers run its tasks
(``scripts/bench_jobs.py``), and every part costs its own submission, status query and
certificate stream. A 2,000-task job goes to 2 shards, a 100,000-task job to every shard
(up to ``MAX_PARTS``)."""
MAX_PARTS = 64
"""At most this many parts: every ``status`` of the whole job asks each part's committee."""
WHOLE_DOMAIN = b"novacron/whole-job/v1"


class SplitError(DaemonError):
    """The job file asks for a split this network cannot make (one line, with the fix)."""


@dataclass(frozen=True)
class Part:
    """Part ``index`` of a whole job: the whole job's tasks ``first .. first + count - 1``."""
    index: int
    first: int
    count: int
    shard: int
    job: bytes = b""
    """The part's own job id (known once its ``Submit`` is built)."""

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def words(self) -> str:
        span = f"task {self.first}" if self.count == 1 else f"tasks {self.first}-{self.last}"
        return f"{span} on shard {self.shard}"


def part_count(tasks: int, shards: int, asked: int) -> int:
    """How many parts a job of ``tasks`` tasks becomes on ``shards`` shards; ``asked`` is the
    job file's ``[placement] shards`` (0: ``auto``). A number above the network's shards is
    refused rather than quietly lowered: the user asked for a spread the network cannot give."""
    if asked == 0:
        return max(1, min(shards, MAX_PARTS, tasks // AUTO_PART_TASKS))
    if asked > shards:
        raise SplitError(f"[placement] shards = {asked}, but this network has {shards} "
                         f"shard{'s' if shards != 1 else ''}: give shards = \"auto\" or at most "
                         f"{min(shards, MAX_PARTS)}")
    return min(asked, tasks)


def plan(tasks: int, parts: int, shards: int, start: int) -> list[Part]:
    """``parts`` contiguous ranges of ``tasks`` as even as can be (sizes differ by at most
    one, the larger first), on the distinct shards ``start, start + 1, ...`` (mod ``shards``)."""
    if not 1 <= parts <= min(tasks, shards):
        raise SplitError(f"cannot split {tasks} tasks into {parts} parts on {shards} shards")
    size, extra = divmod(tasks, parts)
    out, first = [], 0
    for k in range(parts):
        count = size + (k < extra)
        out.append(Part(k, first, count, (start + k) % shards))
        first += count
    return out


def grind_nonce(job_id_of: Callable[[int], bytes], shard: int, shards: int, nonce: int,
                tries: int = 100_000) -> tuple[int, bytes]:
    """The first nonce from ``nonce`` whose job id (``job_id_of(nonce)``) falls in ``shard``:
    a part's committee then follows from its id, as every job's does. ``shards`` tries are
    expected; ``tries`` bounds the search (a 1-in-10^-20 miss for 1,024 shards)."""
    for n in range(nonce, nonce + tries):
        jid = job_id_of(n & 0xFFFF_FFFF_FFFF_FFFF)
        if shard_of(jid, shards) == shard:
            return n & 0xFFFF_FFFF_FFFF_FFFF, jid
    raise SplitError(f"no nonce in {tries} tries puts a part in shard {shard}")


def shard_of(jid: bytes, shards: int) -> int:
    """As ``CommitteeService.shard_of``."""
    return int.from_bytes(jid[:8], "big") % shards


def whole_id(parts: Sequence[Part]) -> bytes:
    """The whole job's id: a hash of its parts' ids and task ranges, in order."""
    h = hashlib.sha256(WHOLE_DOMAIN + len(parts).to_bytes(2, "big"))
    for p in parts:
        h.update(p.job + p.first.to_bytes(4, "big") + p.count.to_bytes(4, "big"))
    return h.digest()


def locate(parts: Sequence[Part], task: int) -> tuple[Part, int]:
    """The part holding the whole job's ``task``, and the task's index within that part."""
    starts = [p.first for p in parts]
    k = bisect.bisect_right(starts, task) - 1
    if k < 0 or task > parts[k].last:
        raise IndexError(task)
    return parts[k], task - parts[k].first


# -- the whole job's view ------------------------------------------------------------------

_COUNTS = ("tasks", "accepted", "ok", "failed", "cancelled", "open", "running", "checkpointed")
ENDED = ("done", "cancelled", "expired", "gone")
"""``gone``: the part's committee has no such job: ended parts leave their ledger a day after
they end (their results stay with the submitter), or the submission never reached it."""


@dataclass(frozen=True)
class Unanswered:
    """A part whose status could not be read: ``unreachable`` (its committee did not answer:
    its tasks may still run) or ``gone`` (its committee has no such job)."""
    state: str
    error: str


def combine_state(states: Sequence[str]) -> str:
    """One state for the whole job: ``loading`` or ``open`` while any part is (a part that
    cannot be reached counts as open: its tasks may still be running); once every part has
    ended, ``done`` only if all are done, else ``cancelled`` if any was, else the other end."""
    if any(s == "loading" for s in states):
        return "loading"
    if any(s not in ENDED for s in states):
        return "open"
    if all(s == "done" for s in states):
        return "done"
    return "cancelled" if "cancelled" in states else next(s for s in states if s != "done")


def combine(whole: bytes, name: str, parts: Sequence[Part],
            replies: Sequence[dict[str, Any] | Unanswered]) -> dict[str, Any]:
    """The whole job's status from each part's (a ``Query`` reply made JSON-ready, or why a
    part could not be read). An unreachable part's tasks count as open (not running), a gone
    part's only in ``tasks``; either shows with its error in ``parts``. Task rows are
    renumbered to the whole job's."""
    counts: dict[str, Any] = {k: 0 for k in _COUNTS}
    failures: dict[str, int] = {}
    agreed: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    views, states = [], []
    base: dict[str, Any] = {}
    for part, reply in zip(parts, replies):
        view: dict[str, Any] = {"part": part.index, "job": part.job.hex(), "shard": part.shard,
                                "first": part.first, "tasks": part.count}
        if isinstance(reply, Unanswered):
            view.update(state=reply.state, error=reply.error)
            counts["tasks"] += part.count
            if reply.state != "gone":
                counts["open"] += part.count
            states.append(reply.state)
            views.append(view)
            continue
        base = base or reply
        c = reply["counts"]
        for k in _COUNTS:
            counts[k] += c.get(k, 0)
        for src, dst in ((c.get("failures", {}), failures), (c.get("agreed", {}), agreed)):
            for k, n in src.items():
                dst[k] = dst.get(k, 0) + n
        view.update(state=reply["state"], counts=c)
        states.append(reply["state"])
        views.append(view)
        for t in reply.get("tasks", []):
            rows.append({**t, "task": t["task"] + part.first})
    if not counts["checkpointed"]:
        del counts["checkpointed"]
    counts["failures"] = dict(sorted(failures.items()))
    counts["agreed"] = dict(sorted(agreed.items(), key=lambda kv: int(kv[0])))
    out = {k: v for k, v in base.items() if k not in ("tasks", "counts", "job", "state")}
    ok = [r for r in replies if not isinstance(r, Unanswered)]
    if ok:
        out["submitted_ms"] = min(r["submitted_ms"] for r in ok)
        out["deadline_ms"] = max(r["deadline_ms"] for r in ok)
        out["now_ms"] = max(r.get("now_ms", 0) for r in ok)
    out.update(job=whole.hex(), name=name, state=combine_state(states), counts=counts,
               parts=views)
    if rows:
        out["tasks"] = sorted(rows, key=lambda r: r["task"])
    return out


def spread_words(parts: Sequence[dict[str, Any]]) -> str:
    """``split in 2 parts: tasks 0-49 on shard 0 (open), tasks 50-99 on shard 1 (done)``."""
    words = []
    for p in parts:
        part = Part(p["part"], p["first"], p["tasks"], p["shard"])
        extra = f": {p['error']}" if p.get("error") else ""
        words.append(f"{part.words()} ({p['state']}{extra})")
    return f"split in {len(parts)} parts: " + ", ".join(words)


def parts_of(info: dict[str, Any]) -> list[Part] | None:
    """The parts a result directory's ``job.json`` lists (None: a job that was not split)."""
    if not info.get("parts"):
        return None
    return [Part(int(p["part"]), int(p["first"]), int(p["tasks"]), int(p["shard"]),
                 bytes.fromhex(p["job"])) for p in info["parts"]]

"""One FL round, planned and closed: the pure core of the node's FL driver (no I/O, no clock).

Theory of operation. A run is a sequence of rounds. Round ``k``:

1. ``plan_round`` picks ``clients_per_round`` shards (seeded by job seed and round,
   ``round_rng``, so a resumed run picks what an uninterrupted one would have), plans each
   client's link (``daemon.fl.linkplan``, from the volunteers that ran that client last time,
   carried in its ``ClientState``) and writes each client's task input line
   (``task_input``). The plan is stored with the round's job before the job is submitted.
2. The round's job runs on the network (the driver's business); each task ends certified or
   lost.
3. ``close_round`` decodes the certified updates against the model, aggregates them (FedAvg,
   FedProx, median, trimmed mean, or DP-FedAvg with noise seeded by job seed and round),
   returns the new model, the round's history row (without the test metrics, which the
   driver's evaluation adds with ``finish_row``) and the clients' state for the next round.

**Per-client state carried across rounds** lives in ``ClientState``: the volunteers that ran
the client's certified task (the next round's link plan reads them), its error-feedback
residual and who holds it (``daemon.fl.feedback``: the next input names it, as a sticky file
the task reads, or resets it when its holders are gone or the task that named it failed), and
its similarity ``alpha`` with the step its update joined (``selection = "phi"``: the round's
clients are drawn by φ = α × β, β from the availability forecast of the volunteers that would
run each client, ``daemon.fl.select``). ``carry`` fills the state from the certified head line;
``plan_round`` writes it into the client's next input.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np

from daemon.fl.aggregate import aggregate
from daemon.fl.feedback import FeedbackPlan, Residual, plan_feedback, residual_after
from daemon.fl.feedback import task_input as ef_input
from daemon.fl.linkplan import ClientLink, client_link
from daemon.fl.params import FLError, Params, add
from daemon.fl.privacy import clip, epsilon, noisy_mean
from daemon.fl.select import choose, phi_rows, select_random, similarity
from daemon.fl.spec import FLSpec
from daemon.fl.uplink import decode_update
from protocol.errors import RemoteProtocolError

DP_DELTA = 1e-5
MAX_HEAD = 64 * 1024
"""An output's JSON head line (the adaptive level table is a few hundred bytes)."""


class RunState(Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self is not RunState.RUNNING


@dataclass(frozen=True)
class ClientState:
    """What one client (a shard) carries from its last certified round into its next one."""

    workers: tuple[str, ...] = ()
    """The volunteers whose certified result it was (the next link plan's first guess)."""
    residual: Residual | None = None
    """Its error-feedback residual, kept by the volunteers that made it (None: none)."""
    ef_failed: bool = False
    """Its last task named the residual and failed: the next one starts afresh."""
    alpha: float | None = None
    """Similarity of its last certified update with that round's step (φ selection)."""

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workers": list(self.workers)}
        if self.residual is not None:
            out["residual"] = self.residual.to_wire()
        if self.ef_failed:
            out["ef_failed"] = True
        if self.alpha is not None:
            out["alpha"] = self.alpha
        return out

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> ClientState:
        alpha = wire.get("alpha")
        return cls(tuple(str(w) for w in wire.get("workers", ())),
                   Residual.from_wire(wire.get("residual")), bool(wire.get("ef_failed", False)),
                   None if alpha is None else float(alpha))


@dataclass(frozen=True)
class Planned:
    """One client's task in a round: its shard, its input line and the link it was planned on."""

    shard: str
    input: str
    link: ClientLink | None
    """None: the job fixed the level."""
    notes: Mapping[str, Any] = field(default_factory=dict)
    """For the history: ``ef`` (the residual the input names and its holders, or why one was
    reset) and ``selected`` (α, β, φ when chosen by φ)."""

    def to_wire(self) -> list[Any]:
        link = self.link
        return [self.shard, self.input, None if link is None else
                [link.bandwidth, link.rtt_s, link.basis, link.node, link.considered],
                dict(self.notes)]

    @classmethod
    def from_wire(cls, wire: Sequence[Any]) -> Planned:
        shard, line, link = wire[:3]
        notes = dict(wire[3]) if len(wire) > 3 else {}
        return cls(str(shard), str(line), None if link is None else ClientLink(
            float(link[0]), float(link[1]), str(link[2]), link[3], int(link[4])), notes)


@dataclass(frozen=True)
class RoundPlan:
    round: int
    clients: tuple[Planned, ...]

    @property
    def inputs(self) -> list[str]:
        return [c.input for c in self.clients]

    @property
    def shards(self) -> list[str]:
        return [c.shard for c in self.clients]

    def to_wire(self) -> dict[str, Any]:
        return {"round": self.round, "clients": [c.to_wire() for c in self.clients]}

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> RoundPlan:
        return cls(int(wire["round"]), tuple(Planned.from_wire(c) for c in wire["clients"]))


@dataclass(frozen=True)
class TaskResult:
    """How one client's task of the round ended, as the driver found it."""

    task: int
    status: str
    """``OK`` (certified, output fetched and checked) or why the update is lost."""
    output: bytes = b""
    workers: tuple[str, ...] = ()
    output_sha256: str = ""
    checks: tuple[str, ...] = ()
    certificate: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


@dataclass(frozen=True)
class Closed:
    model: Params
    row: dict[str, Any]
    """The round's history row without the test metrics (``finish_row`` adds them)."""
    clients: dict[str, ClientState]


def round_rng(spec: FLSpec, rnd: int) -> random.Random:
    """Round ``rnd``'s own generator, seeded by (job seed, round): a resumed run draws what an
    uninterrupted one would, without replaying earlier rounds (and a selection that weighs
    clients by what earlier rounds did, as φ does, draws from it the same way)."""
    return random.Random(f"novacron-fl/{spec.seed}/{rnd}")


def chosen_phi(spec: FLSpec, shards: Sequence[str], rnd: int,
               clients: Mapping[str, ClientState],
               staying: Mapping[str, float]) -> tuple[list[int], list[tuple[float, float, float]]]:
    """Round ``rnd``'s shards by φ (``selection = "phi"``), drawn with a generator seeded by
    (seed, round): a re-planned round draws as the first plan did from the same utilities.
    Each shard's β is that of its residual's holders, else its last workers."""
    workers = {s: (st.residual.holders if st.residual is not None else st.workers)
               for s, st in clients.items()}
    alpha = {s: st.alpha for s, st in clients.items() if st.alpha is not None}
    rows = phi_rows(shards, alpha, workers, staying)
    rng = random.Random(f"novacron-fl-phi:{spec.seed}:{rnd}")
    return choose("phi", rng, [r[2] for r in rows], spec.clients_per_round), rows


def chosen(spec: FLSpec, shard_count: int, rnd: int) -> list[int]:
    """The shards (indices) round ``rnd`` (from 1) trains, drawn uniformly."""
    return select_random(round_rng(spec, rnd), shard_count, spec.clients_per_round)


def task_input(spec: FLSpec, shard: str, rnd: int, link: ClientLink | None,
               state: ClientState) -> str:
    """One client's input line (``daemon/fl/sandbox/fl_task.py`` reads it):
    ``<shard> <round> <codec> <local epochs> <seed> [<FedProx mu>]``."""
    codec = spec.codec if link is None else link.task_field(spec.time_budget_s,
                                                            spec.error_budget)
    prox = f" {spec.mu!r}" if spec.mu > 0 else ""
    return f"{shard} {rnd} {codec} {spec.local_epochs} {spec.seed}{prox}"


def plan_round(spec: FLSpec, shards: Sequence[str], rnd: int,
               clients: Mapping[str, ClientState], links: Mapping[str, Mapping[str, Any]],
               volunteers: Sequence[str], *, staying: Mapping[str, float] | None = None,
               keep: int = 0) -> RoundPlan:
    """Round ``rnd``'s clients and their inputs. ``links``/``volunteers``: the node's
    predicted link from each volunteer to it (the ``links`` RPC's answer); ``staying``: each
    live volunteer's staying share (``selection = "phi"``, the ``forecast`` RPC's answer);
    ``keep``: the float32 model's bytes (a residual's size, with error feedback)."""
    rows: list[tuple[float, float, float]] = []
    if spec.selection == "phi":
        picks, rows = chosen_phi(spec, shards, rnd, clients, staying or {})
    else:
        picks = chosen(spec, len(shards), rnd)
    planned = []
    for i in picks:
        shard = shards[i]
        state = clients.get(shard, ClientState())
        link = client_link(state.workers, volunteers, links, spec.replicas) \
            if spec.adaptive else None
        notes: dict[str, Any] = {}
        fb: FeedbackPlan | None = None
        if spec.error_feedback:
            fb = plan_feedback(state.residual, set(volunteers), last_failed=state.ef_failed)
            notes["ef"] = fb.as_dict()
        if rows:
            a, b, phi = rows[i]
            notes["selected"] = {"alpha": round(a, 6), "beta": round(b, 6), "phi": round(phi, 6)}
        line = task_input(spec, shard, rnd, link, state)
        planned.append(Planned(shard, ef_input(line, fb, keep), link, notes))
    return RoundPlan(rnd, tuple(planned))


def round_files(task_files: Mapping[str, bytes], shards: Sequence[str], plan: RoundPlan,
                model_npz: bytes) -> dict[str, bytes]:
    """The round's bundle: the task's files with only the chosen shards (a shard not trained
    this round would be fetched by every worker for nothing), and the global model."""
    unused = set(shards) - set(plan.shards)
    return {**{k: v for k, v in task_files.items() if k not in unused}, "global.npz": model_npz}


def max_output(model: Params) -> int:
    """An update is never larger than twice the float32 model, plus its head line."""
    return 2 * sum(a.nbytes for a in model.values()) + 64 * len(model) + 4096 + MAX_HEAD


def parse_output(output: bytes, like: Params) -> tuple[dict[str, Any], Params]:
    """A task's certified output: its JSON head line and the decoded update. ``FLError`` (one
    line) if it is not what ``fl_task.py`` prints."""
    line, sep, rest = output.partition(b"\n")
    try:
        head = json.loads(line) if sep and len(line) <= MAX_HEAD else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or not {"shard", "samples", "loss"} <= head.keys():
        raise FLError("the output does not start with its JSON line; was the job's script"
                      " changed?")
    try:
        return head, decode_update(rest, like)
    except RemoteProtocolError as err:
        raise FLError(f"its update does not decode against the model ({err}); does train()"
                      " keep every tensor's name and shape?") from None


def close_round(spec: FLSpec, model: Params, plan: RoundPlan, results: Sequence[TaskResult],
                clients: Mapping[str, ClientState], *, job: str) -> Closed:
    """Aggregate the round's certified updates into the next model. ``FLError`` when no
    update is usable (the run cannot go on: the message says why)."""
    updates: list[Params] = []
    weights: list[float] = []
    losses: list[float] = []
    tasks: list[dict[str, Any]] = []
    update_bytes = 0
    carried = dict(clients)
    keep = 4 * sum(a.size for a in model.values())
    by_shard: dict[str, Params] = {}
    for r in sorted(results, key=lambda r: r.task):
        planned = plan.clients[r.task]
        state = carried.get(planned.shard, ClientState())
        ef = planned.notes.get("ef")
        if ef is not None and not ef.get("residual"):
            state = replace(state, residual=None, ef_failed=False)  # told to start afresh
        if r.status == "OK":
            try:
                head, update = parse_output(r.output, model)
                left = residual_after(head, r.workers, plan.round, keep) if ef is not None \
                    else None
            except FLError as err:
                r = TaskResult(r.task, "BAD_OUTPUT", detail=str(err))
        if r.status != "OK":
            if ef is not None and ef.get("residual"):
                state = replace(state, ef_failed=True)  # the residual may be what it lacked
            if state != carried.get(planned.shard, ClientState()):
                carried[planned.shard] = state
            tasks.append({"task": r.task, "shard": planned.shard, "status": r.status,
                          **planned.notes, **({"detail": r.detail} if r.detail else {})})
            continue
        updates.append(update)
        weights.append(float(head["samples"]))
        losses.append(float(head["loss"]))
        update_bytes += len(r.output)
        by_shard[planned.shard] = update
        carried[planned.shard] = replace(carry(state, head, r), residual=left, ef_failed=False)
        notes = dict(planned.notes)
        if ef is not None:
            notes["ef"] = {**ef, "kept": head.get("ef")}
        tasks.append({"task": r.task, "shard": planned.shard, "status": "OK",
                      "samples": head["samples"], "loss": head["loss"], **notes,
                      "codec": head.get("codec", spec.codec), **why(planned.link, head),
                      "workers": list(r.workers), "bytes": len(r.output),
                      "output_sha256": r.output_sha256, "checks": list(r.checks),
                      "certificate": r.certificate})
    if not updates:
        details = sorted({t.get("detail") or t["status"] for t in tasks})
        raise FLError(f"round {plan.round}: no client's update was certified"
                      f" ({'; '.join(details)[:300]})")
    if spec.dp_clip > 0:
        rng = np.random.default_rng([spec.seed, plan.round])
        step = noisy_mean([clip(u, spec.dp_clip) for u in updates], max_norm=spec.dp_clip,
                          noise_multiplier=spec.dp_noise, rng=rng)
    else:
        step = aggregate(spec.aggregation, updates, weights, trim=spec.trim)
    new = add(model, step)
    for t in tasks:  # alpha, for φ selection: how well each update agreed with the step
        if t["shard"] in by_shard:
            t["similarity"] = round(similarity(by_shard[t["shard"]], step), 6)
            carried[t["shard"]] = replace(carried[t["shard"]], alpha=t["similarity"])
    row: dict[str, Any] = {
        "round": plan.round, "job": job, "clients": len(plan.clients), "updates": len(updates),
        "lost": len(plan.clients) - len(updates), "codec": spec.codec,
        "selection": spec.selection, "error_feedback": spec.error_feedback,
        "levels": dict(sorted(Counter(t["codec"] for t in tasks if t["status"] == "OK")
                              .items())),
        "update_bytes": update_bytes,
        "train_loss": round(float(np.average(losses, weights=weights)), 6),
        "tasks": tasks}
    return Closed(new, row, carried)


def carry(state: ClientState, head: Mapping[str, Any], result: TaskResult) -> ClientState:
    """A client's state after its certified round (see the module docstring; the residual
    and alpha are set by ``close_round``)."""
    return replace(state, workers=tuple(sorted(result.workers)) or state.workers)


def finish_row(spec: FLSpec, row: dict[str, Any], metrics: Mapping[str, float],
               model: Params) -> dict[str, Any]:
    """The history row with the evaluation's metrics and the new model's digest, in the
    order ``history.json`` has always had."""
    tasks = row["tasks"]
    out = {k: v for k, v in row.items() if k != "tasks"}
    out.update(test_loss=round(float(metrics["loss"]), 6),
               accuracy=round(float(metrics["accuracy"]), 6),
               model_sha256=model_digest(model), tasks=tasks)
    if spec.dp_clip > 0:
        out["epsilon"] = epsilon(rounds=int(row["round"]), noise_multiplier=spec.dp_noise,
                                 delta=DP_DELTA)
    return out


def why(plan: ClientLink | None, head: Mapping[str, Any]) -> dict[str, Any]:
    """The history's account of a client's level: the link it was planned on, and the reward
    of every level on its update (as the task measured and the certificate covers)."""
    if plan is None:
        return {"why": "fixed by the job file"}
    return {"link": plan.as_dict(), "levels": head.get("levels"),
            "why": f"largest reward for {plan.bandwidth / 1e3:,.0f} kB/s,"
                   f" {plan.rtt_s * 1000:.1f} ms ({plan.describe()})"}


def model_digest(model: Params) -> str:
    """SHA-256 over the model's tensors in name order (names, shapes and float32 bytes)."""
    h = hashlib.sha256()
    for name in sorted(model):
        array = np.ascontiguousarray(model[name], dtype=np.float32)
        h.update(f"{name}:{array.shape};".encode())
        h.update(array.tobytes())
    return h.hexdigest()

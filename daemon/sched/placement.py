"""Choose k peers for a task: most likely to return a useful result, spread over failure domains.

Theory of operation.

1. Feasibility, per candidate, first failing rule wins: runtime offered, memory, cores,
   attestation level >= the task's minimum, reputation > 0, and up (it has a current session).
2. Score, per candidate: ``P(useful) = p_finish x reputation``, where ``p_finish`` is the
   calibrated forecast that the peer stays up for the task's expected wall time on it,
   ``wall = link_s + duration x (1 + load)`` (a loaded peer runs the task slower; shipping the
   inputs takes ``link_s``), plus, for a task whose input names sticky files (state an earlier
   task left on the volunteers that ran it, ``protocol.sticky``), the time a peer that does not
   hold them takes to fetch them (``sticky_s``): affinity to the holders, as strong as the
   bytes they save. Reputation, kept by the committee, is read as the chance the
   peer's result is one the quorum accepts, so the product is one probability, not a blend of
   scores with tuned weights, and the explanation can show each factor. The score placement
   ranks by is ``P(useful) x duration / wall``: useful results per unit of time, as against an
   idle peer that holds everything. A peer with tasks queued, a slow link or sticky files to
   fetch delivers later; ``P(useful)`` alone barely sees that (a host up for days is as likely
   to stay up for 40 s as for 80 s), so a 4-task job with 2 replicas went wholly to the two
   peers of best reputation while three others idled, and each finished result made the same
   two more reputable still.
3. Order: by score (quantised to 1e-9 so that last-bit differences between machines cannot
   reorder peers), ties broken by ``blake2b(tie_seed || node_id)``, so ties break the same
   way on every replica yet not always toward the same peer.
4. Pick greedily in that order under a failure-domain cap: first at most one replica per
   domain, then two, and so on, never all ``k`` in one domain when ``k >= 2``. With the cap at
   one per domain this greedy is optimal for any objective that grows with each replica's
   chance (P(all finish), P(a quorum finishes), ...): the domains form a partition matroid,
   and the greedy basis dominates every other basis element by element.

Determinism: same ``PlacementInputs`` -> same ``Placement``. A committee backup checks a
primary's proposal with ``check_placement``: recompute; if the result differs (another
machine's libm), accept the proposal only if it is valid and its sorted scores are within
``SCORE_TOLERANCE`` of the recomputed ones.

Inputs are the primary's view: summaries and load are soft state the primary includes in the
proposal; reputation and attestation levels are hard state backups can check against their
own ledger before calling ``check_placement``.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from daemon.sched import explain as ex
from daemon.sched.explain import Explanation, Factors, PeerVerdict
from daemon.sched.predictor import ModelTable, Predictor
from daemon.sched.summary import AvailabilitySummary
from daemon.sched.timebase import HOUR
from protocol.attestation import AttestationLevel
from protocol.identity import NodeId

SCORE_QUANTUM = 1e-9
SCORE_TOLERANCE = 1e-6
MAX_CANDIDATES = 10_000
MAX_REPLICAS = 64


@dataclass(frozen=True, slots=True)
class Candidate:
    """One peer as placement sees it."""

    node_id: NodeId
    availability: AvailabilitySummary | None
    """Its gossiped summary (None if it sent none: forecast from the prior if vouched up)."""
    cores: int
    memory_mib: int
    runtimes: frozenset[str]
    attestation: AttestationLevel
    reputation: float
    """Hard state from the committee, in [0, 1]."""
    load: float
    """Share of its volunteered capacity already busy, in [0, 1]."""
    link_s: float
    """Estimated seconds to ship the task's inputs to it."""
    domain: str
    """Failure domain: a /24, an AS, an operator tag... peers that fail together share it."""
    vouched_since: float | None = None
    """When the observer itself has seen this peer up since (caps claimed uptime)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.reputation <= 1.0 or not 0.0 <= self.load <= 1.0:
            raise ValueError(f"{self.node_id}: reputation and load must be within [0, 1]")
        if not (self.link_s >= 0 and math.isfinite(self.link_s)):
            raise ValueError(f"{self.node_id}: link cost must be finite and >= 0")
        if self.cores < 0 or self.memory_mib < 0:
            raise ValueError(f"{self.node_id}: cores and memory must be >= 0")


@dataclass(frozen=True, slots=True)
class TaskNeeds:
    duration_s: float
    """Estimated run time on an idle peer, seconds."""
    replicas: int = 1
    memory_mib: int = 0
    cores: int = 1
    runtime: str = "wasm32-wasi"
    min_attestation: AttestationLevel = AttestationLevel.NONE
    holders: frozenset[str] = frozenset()
    """Volunteers holding the task's sticky files (they fetch nothing)."""
    sticky_s: float = 0.0
    """Seconds any other peer spends fetching them first."""

    def __post_init__(self) -> None:
        if not (self.sticky_s >= 0 and math.isfinite(self.sticky_s)):
            raise ValueError("the sticky files' fetch time must be finite and >= 0")
        if not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise ValueError("task duration must be positive and finite")
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise ValueError(f"replicas must be within 1..{MAX_REPLICAS}")


@dataclass(frozen=True)
class PlacementInputs:
    needs: TaskNeeds
    candidates: tuple[Candidate, ...]
    now: float
    tie_seed: bytes
    """Per-task bytes (the task id): ties break deterministically, differently per task."""
    predictor: Predictor = field(default_factory=Predictor)
    max_rejected: int = 5

    def __post_init__(self) -> None:
        if len(self.candidates) > MAX_CANDIDATES:
            raise ValueError(f"at most {MAX_CANDIDATES} candidates per placement")
        ids = [c.node_id for c in self.candidates]
        if len(set(ids)) != len(ids):
            raise ValueError("candidate node ids must be unique")


@dataclass(frozen=True)
class Placement:
    chosen: tuple[NodeId, ...]
    explanation: Explanation

    @property
    def complete(self) -> bool:
        return len(self.chosen) == self.explanation.replicas


@dataclass(frozen=True, slots=True)
class _Scored:
    index: int
    cand: Candidate
    score: float
    code: str | None
    """None when feasible, else the reason code that rules it out."""
    reason: str
    key: tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class _Scores:
    """Every candidate scored, best first; factors are built only for peers we explain."""

    ranked: list[_Scored]
    p: np.ndarray
    wall: np.ndarray
    uptime_h: np.ndarray

    def factors(self, s: _Scored) -> Factors:
        c, i = s.cand, s.index
        up = bool(np.isfinite(self.uptime_h[i]))
        return Factors(
            p_finish=float(self.p[i]), reputation=c.reputation, load=c.load,
            attestation=c.attestation, link_s=c.link_s, wall_s=float(self.wall[i]), score=s.score,
            uptime_h=float(self.uptime_h[i]) if up else None, domain=c.domain,
        )


def _tie(seed: bytes, node_id: str) -> bytes:
    return hashlib.blake2b(seed + node_id.encode(), digest_size=8).digest()


def _infeasible(c: Candidate, needs: TaskNeeds, up: bool) -> tuple[str, str] | None:
    if needs.runtime not in c.runtimes:
        return ex.RUNTIME, f"does not offer runtime {needs.runtime}"
    if c.memory_mib < needs.memory_mib:
        return ex.MEMORY, f"offers {c.memory_mib} MiB, the task needs {needs.memory_mib} MiB"
    if c.cores < needs.cores:
        return ex.CORES, f"offers {c.cores} cores, the task needs {needs.cores}"
    if c.attestation < needs.min_attestation:
        return ex.ATTESTATION, (
            f"attestation {c.attestation.name} below the task's minimum {needs.min_attestation.name}"
        )
    if c.reputation <= 0.0:
        return ex.REPUTATION, "reputation 0 (excluded by the committee)"
    if not up:
        return ex.DOWN, "not up (no current session in its availability summary)"
    return None


def _score_all(inputs: PlacementInputs) -> _Scores:
    needs, cands = inputs.needs, inputs.candidates
    empty = np.zeros(0)
    if not cands:
        return _Scores([], empty, empty, empty)
    table = ModelTable.from_summaries([c.availability for c in cands])
    vouched = np.array([np.nan if c.vouched_since is None else c.vouched_since for c in cands])
    load = np.array([c.load for c in cands])
    wall = np.array([c.link_s for c in cands]) + needs.duration_s * (1.0 + load)
    if needs.sticky_s:
        wall = wall + np.array([0.0 if c.node_id in needs.holders else needs.sticky_s
                                for c in cands])
    p = inputs.predictor.p_up_table(
        table, np.arange(len(cands)), inputs.now, wall, vouched_since=vouched,
    )
    start = np.fmax(np.minimum(table.up_since, inputs.now), vouched)
    uptime_h = (inputs.now - start) / HOUR
    up = np.isfinite(start)
    ranked = []
    for i, c in enumerate(cands):
        score = float(p[i]) * c.reputation * needs.duration_s / float(wall[i])
        bad = _infeasible(c, needs, bool(up[i]))
        q = int(round(score / SCORE_QUANTUM))
        ranked.append(_Scored(
            i, c, score, None if bad is None else bad[0], "" if bad is None else bad[1],
            (-q, _tie(inputs.tie_seed, c.node_id)),
        ))
    ranked.sort(key=lambda s: s.key)
    return _Scores(ranked, p, wall, uptime_h)


def place(inputs: PlacementInputs) -> Placement:
    """The placement for ``inputs``, with its explanation. Deterministic."""
    needs = inputs.needs
    k = needs.replicas
    scores = _score_all(inputs)
    ranked = scores.ranked
    feasible = [s for s in ranked if s.code is None]
    cap_limit = 1 if k == 1 else k - 1
    chosen: list[_Scored] = []
    taken: set[int] = set()
    per_domain: Counter[str] = Counter()
    first_in_domain: dict[str, NodeId] = {}
    blocked: dict[NodeId, str] = {}
    cap = 1
    while len(chosen) < k and cap <= cap_limit:
        for s in feasible:
            if len(chosen) == k:
                break
            if s.index in taken:
                continue
            d = s.cand.domain
            if per_domain[d] >= cap:
                blocked.setdefault(s.cand.node_id, first_in_domain[d])
                continue
            chosen.append(s)
            taken.add(s.index)
            per_domain[d] += 1
            first_in_domain.setdefault(d, s.cand.node_id)
        cap += 1
    chosen_ids = {s.cand.node_id for s in chosen}
    weakest = chosen[-1] if chosen else None
    rank = {s.cand.node_id: r for r, s in enumerate(ranked, start=1)}

    verdicts_rejected: list[PeerVerdict] = []
    counts: Counter[str] = Counter()
    for s in ranked:
        nid = s.cand.node_id
        if nid in chosen_ids:
            continue
        if s.code is not None:
            code, reason = s.code, s.reason
        elif nid in blocked:
            code = ex.DOMAIN
            reason = f"same failure domain {s.cand.domain} as chosen peer {blocked[nid]}"
        else:
            code = ex.OUTSCORED
            assert weakest is not None  # a feasible peer left out means k peers were chosen
            if s.key[0] == weakest.key[0]:
                reason = (
                    f"tied at score {s.score:.2f} with chosen peer {weakest.cand.node_id}; "
                    "lost this task's tie-break"
                )
            else:
                reason = (
                    f"score {s.score:.2f} < {weakest.score:.2f} "
                    f"of the weakest chosen peer {weakest.cand.node_id}"
                )
        counts[code] += 1
        if len(verdicts_rejected) < inputs.max_rejected:
            verdicts_rejected.append(PeerVerdict(nid, False, rank[nid], scores.factors(s), code, reason))

    verdicts_chosen = tuple(
        PeerVerdict(s.cand.node_id, True, rank[s.cand.node_id], scores.factors(s), ex.CHOSEN,
                    f"replica {i} of {k}: score {s.score:.2f}")
        for i, s in enumerate(chosen, start=1)
    )
    shortfall = None
    if len(chosen) < k:
        domains = {s.cand.domain for s in feasible}
        shortfall = (
            f"only {len(feasible)} feasible peer(s) in {len(domains)} failure domain(s) for "
            f"{k} replica(s), at most {cap_limit} per domain"
        )
    explanation = Explanation(
        duration_s=needs.duration_s, replicas=k, now=inputs.now,
        chosen=verdicts_chosen, rejected=tuple(verdicts_rejected),
        rejected_counts=tuple(sorted(counts.items())), shortfall=shortfall,
    )
    return Placement(tuple(s.cand.node_id for s in chosen), explanation)


def check_placement(proposal: Placement | Sequence[NodeId], inputs: PlacementInputs) -> str | None:
    """None if ``proposal`` is the placement these inputs call for, else why it is not.

    Exactly equal to our own ``place(inputs)``: accepted. Otherwise accepted only if every
    peer is a known, feasible, distinct candidate, the domain rule holds, it has as many
    peers as ours, and its scores, sorted, are each within ``SCORE_TOLERANCE`` of ours (so a
    last-bit difference in another machine's maths cannot trigger a view change).
    """
    proposed = tuple(proposal.chosen if isinstance(proposal, Placement) else proposal)
    ours = place(inputs)
    if proposed == ours.chosen:
        return None
    if len(set(proposed)) != len(proposed):
        return "a peer appears twice in the proposal"
    if len(proposed) != len(ours.chosen):
        return f"proposal has {len(proposed)} peer(s), the inputs call for {len(ours.chosen)}"
    scored = {s.cand.node_id: s for s in _score_all(inputs).ranked}
    k = inputs.needs.replicas
    per_domain: Counter[str] = Counter()
    for nid in proposed:
        s = scored.get(nid)
        if s is None:
            return f"peer {nid} is not among the candidates"
        if s.code is not None:
            return f"peer {nid} is not eligible: {s.reason}"
        per_domain[s.cand.domain] += 1
    if k >= 2 and max(per_domain.values(), default=0) >= k:
        return "all replicas in one failure domain"
    ours_domains: Counter[str] = Counter(scored[n].cand.domain for n in ours.chosen)
    if max(per_domain.values(), default=0) > max(ours_domains.values(), default=0):
        return "replicas are less spread over failure domains than the candidates allow"
    mine = sorted((scored[n].score for n in ours.chosen), reverse=True)
    theirs = sorted((scored[n].score for n in proposed), reverse=True)
    for i, (a, b) in enumerate(zip(mine, theirs)):
        if b < a - SCORE_TOLERANCE:
            return (
                f"not the best placement: its replica {i + 1} has score {b:.6f}, "
                f"a valid choice has {a:.6f}"
            )
    return None

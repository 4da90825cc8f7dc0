"""Why a placement chose the peers it chose: the record behind ``novacron explain``.

Every placement carries an ``Explanation``: for each chosen peer and for the best rejected
ones, the factors that were weighed (probability of finishing, reputation, load, attestation,
link cost, failure domain) and, for a rejected peer, the one reason it lost, as a stable code
plus a sentence a volunteer or researcher can read:

    code         sentence (example)
    ----------   ---------------------------------------------------------------
    chosen       "replica 1 of 3: score 0.91"
    outscored    "score 0.41 < 0.87 of the weakest chosen peer 12D3KooW..."
                 (or "tied at score 0.90 with chosen peer ...; lost this task's tie-break")

(score = P(useful) x duration / wall: ``daemon.sched.placement``.)
    domain       "same failure domain 10.0.3.0/24 as chosen peer 12D3KooW..."
    attestation  "attestation NONE below the task's minimum TPM"
    memory       "offers 2048 MiB, the task needs 4096 MiB"
    cores        "offers 1 cores, the task needs 2"
    runtime      "does not offer runtime wasm32-wasi"
    down         "not up (no current session in its availability summary)"
    reputation   "reputation 0 (excluded by the committee)"

``to_dict()`` is plain JSON (what the daemon's control socket returns); ``render()`` is the
text ``novacron explain`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.attestation import AttestationLevel
from protocol.identity import NodeId

CHOSEN = "chosen"
OUTSCORED = "outscored"
DOMAIN = "domain"
ATTESTATION = "attestation"
MEMORY = "memory"
CORES = "cores"
RUNTIME = "runtime"
DOWN = "down"
REPUTATION = "reputation"
REASON_CODES = (CHOSEN, OUTSCORED, DOMAIN, ATTESTATION, MEMORY, CORES, RUNTIME, DOWN, REPUTATION)


@dataclass(frozen=True, slots=True)
class Factors:
    """What placement weighed for one peer."""

    p_finish: float
    """Calibrated P(the peer stays up for the task's expected wall time)."""
    reputation: float
    load: float
    attestation: AttestationLevel
    link_s: float
    wall_s: float
    """Expected wall time on this peer: link cost + duration x (1 + load)."""
    score: float
    """P(useful result) x duration / wall_s, P(useful) = p_finish x reputation: useful
    results per unit of time, what placement maximises."""
    uptime_h: float | None
    """Current uptime the forecast was conditioned on (None when down)."""
    domain: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_finish": round(self.p_finish, 4),
            "reputation": round(self.reputation, 4),
            "load": round(self.load, 4),
            "attestation": self.attestation.name,
            "link_s": round(self.link_s, 3),
            "wall_s": round(self.wall_s, 1),
            "p_useful": round(self.p_finish * self.reputation, 4),
            "score": round(self.score, 4),
            "uptime_h": None if self.uptime_h is None else round(self.uptime_h, 2),
            "domain": self.domain,
        }


@dataclass(frozen=True, slots=True)
class PeerVerdict:
    """One peer's outcome: chosen or not, with the factors and the reason."""

    node_id: NodeId
    chosen: bool
    rank: int
    """1-based position by score among all candidates (infeasible ones included)."""
    factors: Factors
    code: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "chosen": self.chosen,
            "rank": self.rank,
            "code": self.code,
            "reason": self.reason,
            "factors": self.factors.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """The reasons behind one placement."""

    duration_s: float
    replicas: int
    now: float
    chosen: tuple[PeerVerdict, ...]
    rejected: tuple[PeerVerdict, ...]
    """The best-scoring peers that were not chosen, best first (at most ``max_rejected``)."""
    rejected_counts: tuple[tuple[str, int], ...]
    """How many candidates were rejected for each reason code (all of them, not just shown)."""
    shortfall: str | None
    """Why fewer than ``replicas`` peers were chosen, or None."""

    def verdict(self, node_id: NodeId) -> PeerVerdict | None:
        for v in self.chosen + self.rejected:
            if v.node_id == node_id:
                return v
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "replicas": self.replicas,
            "now": self.now,
            "chosen": [v.to_dict() for v in self.chosen],
            "rejected": [v.to_dict() for v in self.rejected],
            "rejected_counts": dict(self.rejected_counts),
            "shortfall": self.shortfall,
        }

    def render(self) -> str:
        """Human-readable text, one peer per line."""
        lines = [
            f"task of {self.duration_s / 3600:.2f} h, {self.replicas} replica(s): "
            f"chose {len(self.chosen)}" + (f" -- short: {self.shortfall}" if self.shortfall else "")
        ]
        for title, group in (("chosen", self.chosen), ("best rejected", self.rejected)):
            if group:
                lines.append(f"{title}:")
            for v in group:
                f = v.factors
                lines.append(
                    f"  #{v.rank:<3} {v.node_id}  P(finish) {f.p_finish:.2f}  rep {f.reputation:.2f}"
                    f"  load {f.load:.2f}  {f.attestation.name}  link {f.link_s:.1f}s"
                    f"  [{f.domain}]  -> {v.reason}"
                )
        if self.rejected_counts:
            counts = ", ".join(f"{code} {n}" for code, n in self.rejected_counts)
            lines.append(f"rejected in all: {counts}")
        return "\n".join(lines)

"""Which link a client's update is planned for, before its task runs (the submitter's choice).

A real FL round is a job of replicated tasks: every replica of a client's task must print the
same bytes, so the level cannot depend on where a replica runs. The submitter therefore fixes,
in each client's task input, the link the level is chosen for (``ClientLink``); the task then
takes the level with the largest reward ``R = -0.5 T/T_budget - 0.5 QE/QE_budget`` on its own
update for that link (``daemon.fl.sandbox.fl_task``), a pure function of its input, so every
replica takes the same level and the certificate covers the bytes sent.

Which link: the update travels from a volunteer that ran the task to the submitter's node.
Every replica offers it, the submitter's node fetches each offer at once, and the first copy
stored ends the other fetches (``daemon.blobs.service``): the update arrives over the fastest
of its replicas' links, and the slower replicas' hand-overs (which their reports wait for) end
with it. Placement happens after submission, so the submitter plans on the volunteers likely
to run it:

1. the volunteers that ran this client's task in its latest earlier round (placement often
   picks the same reliable, lightly loaded volunteers again), if the soft state predicts a
   link from any of them: the best of those;
2. otherwise the fastest of ``replicas`` volunteers drawn at random, as expected: rank
   ``r(n+1)/(r+1)`` of the ``n`` live volunteers' predicted links, slowest first (with 2
   replicas, the upper tercile; with as many volunteers as replicas, the fastest);
3. otherwise (nobody measured anything yet: the first round of a new network) the prior of
   ``daemon.links.estimate``: 1 MB/s and a 100 ms round trip.

It was the worst link of them once, when each replica's copy crossed its own line: a task
placed on one slow and one fast volunteer was planned on the slow line though its update came
over the fast one, and with placement often pairing one of a few slow volunteers with a fast
one, nearly every client was planned on a slow line.

"Best" and the quantile go by the conservative throughput (one spread below the mean). Pure: the links
come in as data (``links`` RPC of the node, ``daemon.links.summary.predict``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from daemon.links.estimate import DEFAULT_BANDWIDTH, DEFAULT_RTT

MIN_BANDWIDTH = 1_000.0
MAX_BANDWIDTH = 1e12


@dataclass(frozen=True, slots=True)
class ClientLink:
    """The link one client's level is chosen for, and why that one."""

    bandwidth: float
    """Bytes/s the choice plans on (the conservative figure of the link picked)."""
    rtt_s: float
    basis: str
    """``previous`` (the client's earlier workers), ``volunteers`` or ``prior``."""
    node: str | None
    """The volunteer whose link it is (None for the prior)."""
    considered: int
    """How many predicted links the worst was taken from."""

    def task_field(self, time_budget_s: float, error_budget: float) -> str:
        """The task input's codec field: ``adaptive/<B/s>/<rtt ms>/<T budget>/<QE budget>``
        (integers and short decimals: the same text, so the same level, on every replica)."""
        bw = int(min(max(self.bandwidth, MIN_BANDWIDTH), MAX_BANDWIDTH))
        return (f"adaptive/{bw}/{round(self.rtt_s * 1000, 1)}/{time_budget_s!r}/"
                f"{error_budget!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, "node": self.node, "bandwidth": round(self.bandwidth),
                "rtt_ms": round(self.rtt_s * 1000, 1), "considered": self.considered}

    def describe(self) -> str:
        who = f" of {self.node[-8:]}" if self.node else ""
        return {"previous": f"best link of its last round's workers{who}",
                "volunteers": f"expected fastest replica among {self.considered} volunteers'"
                              f" links{who}",
                "prior": "no link measured yet (prior)"}[self.basis]


def client_link(previous_workers: Sequence[str], volunteers: Sequence[str],
                links: Mapping[str, Mapping[str, Any]], replicas: int = 2) -> ClientLink:
    """The link to plan one client's level on; ``links`` maps a node to its predicted link to
    the submitter (``{"low": B/s, "rtt_ms": ...}``, as the node's ``links`` RPC answers)."""
    for basis, nodes in (("previous", previous_workers), ("volunteers", volunteers)):
        known = sorted((float(links[n]["low"]), n) for n in set(nodes) if n in links)
        if known:
            n, r = len(known), min(max(1, replicas), len(known))
            # the fastest of r drawn from n has expected rank r(n+1)/(r+1) (1 = slowest)
            pick = n - 1 if basis == "previous" else max(0, r * (n + 1) // (r + 1) - 1)
            low, node = known[pick]
            rtt = float(links[node].get("rtt_ms", 0.0)) / 1000
            return ClientLink(low, rtt, basis, node, len(known))
    return ClientLink(DEFAULT_BANDWIDTH, DEFAULT_RTT, "prior", None, 0)

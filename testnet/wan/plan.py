"""The address plan of a namespace testnet: pure names and addresses, no I/O.

Every node lives in a network namespace of its own. The namespaces hang off one ``core``
namespace, the testnet's internet, which routes between them (and applies partitions):

    node i (public)   ns <tag>-n<i>   eth0 198.18.<i>.2/24 --- core n<i> 198.18.<i>.1/24
    node i (NAT)      ns <tag>-n<i>   eth0 192.168.<i>.2/24 --- router ns <tag>-r<i>
                                      lan0 192.168.<i>.1/24, wan0 198.18.<i>.2/24 (masquerade)
                                      --- core n<i> 198.18.<i>.1/24

198.18.0.0/15 is the block reserved for benchmarking network devices (RFC 2544), so no real
host is confused with a testnet node; 192.168.<i>.0/24 are the home networks behind the NAT
routers (each its own, so a NAT'ed node never dials another one's address by mistake). These
addresses exist only inside the namespaces the launcher creates; the core has no route to
any 192.168 network, so a node behind NAT cannot be dialled from outside, as at home.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

MAX_NODES = 250
PREFIX = "ncw"
"""Every namespace this testnet creates starts with this (and the testnet's tag)."""
PUBLIC_NET = "198.18.0.0/15"
LAN_NET = "192.168.0.0/16"
P2P_PORT = 4001
"""Each node listens on the same port in its own namespace, as volunteers do."""
RELAY_PORT = 7999
"""The delay relay's port on 127.0.0.1 inside each node's namespace."""
RELAY_MARK = 0x4E43
"""Firewall mark on the relay's own connections, so they are not redirected again."""


@dataclass(frozen=True)
class NodeNet:
    index: int
    ns: str
    ip: str
    """The node's own address (what it listens on)."""
    public_ip: str
    """What the internet sees: its own address, or its NAT router's."""
    gateway: str
    router_ns: str | None = None
    """The NAT router's namespace, or None for a node with a public address."""

    @property
    def natted(self) -> bool:
        return self.router_ns is not None

    @property
    def core_if(self) -> str:
        return f"n{self.index}"


@dataclass(frozen=True)
class Plan:
    tag: str
    nodes: tuple[NodeNet, ...]

    @property
    def core_ns(self) -> str:
        return f"{PREFIX}{self.tag}-core"

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of the plan, core last (removed last, created first)."""
        out = [n.ns for n in self.nodes] + [n.router_ns for n in self.nodes if n.router_ns]
        return out + [self.core_ns]

    def by_public_ip(self) -> dict[str, NodeNet]:
        return {n.public_ip: n for n in self.nodes}

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "nodes": [asdict(n) for n in self.nodes]}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> "Plan":
        nodes = doc["nodes"]
        assert isinstance(nodes, list)
        return cls(str(doc["tag"]), tuple(NodeNet(**n) for n in nodes))


def tag_for(directory: str) -> str:
    """A short tag naming one testnet's namespaces: the same directory, the same tag, so a
    later ``down`` (or a new ``up``) finds what a crashed launcher left behind."""
    return hashlib.sha256(directory.encode()).hexdigest()[:6]


def build(tag: str, n: int, natted: set[int]) -> Plan:
    """The plan for ``n`` nodes, those with indices in ``natted`` behind NAT routers."""
    if not 1 <= n <= MAX_NODES:
        raise ValueError(f"a namespace testnet holds 1 to {MAX_NODES} nodes, not {n}")
    if any(not 0 <= i < n for i in natted):
        raise ValueError("NAT'ed node index out of range")
    nodes = []
    for i in range(n):
        octet = i + 1
        public = f"198.18.{octet}.2"
        if i in natted:
            nodes.append(NodeNet(i, f"{PREFIX}{tag}-n{i}", f"192.168.{octet}.2", public,
                                 f"192.168.{octet}.1", f"{PREFIX}{tag}-r{i}"))
        else:
            nodes.append(NodeNet(i, f"{PREFIX}{tag}-n{i}", public, public, f"198.18.{octet}.1"))
    return Plan(tag, tuple(nodes))


def extend(plan: Plan) -> Plan:
    """The plan with one more node (public: a joining volunteer others can dial)."""
    more = build(plan.tag, len(plan.nodes) + 1, set())
    return Plan(plan.tag, plan.nodes + (more.nodes[-1],))


def choose_natted(n: int, fraction: float, public_first: int, order: list[int]) -> set[int]:
    """Which nodes sit behind NAT: ``round(fraction * n)`` of them, never one of the first
    ``public_first`` (the seeds, which others must be able to dial), taken in ``order`` (a
    seeded shuffle of the indices)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"--nat-fraction must be between 0 and 1, got {fraction}")
    want = round(fraction * n)
    candidates = [i for i in order if i >= public_first]
    if want > len(candidates):
        raise ValueError(f"--nat-fraction {fraction} puts {want} of {n} nodes behind NAT, "
                         f"but the {public_first} seed node(s) must be public; lower it")
    return set(candidates[:want])

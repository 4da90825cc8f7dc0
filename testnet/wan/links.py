"""Each node's access bandwidth in a namespace testnet: drawn from its profile, or set: pure.

A profile (``testnet.wan.profiles``) gives a range of uplinks and of downlink/uplink ratios.
``draw`` gives every node its own line from a seeded generator, so ``testnet up --seed S``
builds the same network every time; the user may set any node's line (``--uplink
node2=1mbit``, ``--downlink node2=8mbit``), which ``override`` applies on top of the draw. The
launcher shapes a node's uplink on its edge of its access veth and its downlink on the core's
edge (``tbf``), so data from A to B moves at most at ``min(up A, down B)``, as on the internet,
where the access lines are the bottlenecks.

Rates are kept in kbit/s (whole numbers: what ``tc`` is given and ``wan.json`` records).
``draw_uplink`` and ``draw_down_ratio`` take anything with a ``uniform(lo, hi)`` method
(``random.Random``, ``numpy.random.Generator``), so the simulators draw from the very same
definition (``testnet.fl_sim``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

from testnet.wan.profiles import Profile

MIN_KBIT = 64
"""Slowest line a user may set (a tenth of a weak mobile uplink); below it TCP stalls."""
MAX_KBIT = 10_000_000
"""Fastest (10 Gbit/s); ``tbf`` on a veth cannot shape much above it anyway."""


class LinkError(ValueError):
    """A bad ``--uplink``/``--downlink`` (one line for the user)."""


class Uniform(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, slots=True)
class NodeLink:
    """One node's access line, kbit/s each way."""

    up_kbit: int
    down_kbit: int

    def describe(self) -> str:
        """``1.2/9.6 Mbit/s`` (up/down), as ``testnet status`` shows it."""
        return f"{mbit(self.up_kbit)}/{mbit(self.down_kbit)} Mbit/s"

    def to_json(self) -> dict[str, int]:
        return {"up_kbit": self.up_kbit, "down_kbit": self.down_kbit}

    @classmethod
    def from_json(cls, doc: dict[str, int]) -> "NodeLink":
        return cls(int(doc["up_kbit"]), int(doc["down_kbit"]))


def mbit(kbit: int) -> str:
    """kbit/s as Mbit/s for people: three significant digits, whole numbers from 100."""
    value = kbit / 1000
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def draw_uplink(profile: Profile, rng: Uniform, unit: float = 1e6) -> float:
    """One node's uplink, log-uniform over the profile's range, in ``unit`` per second
    (1e6: bits; 1e6 / 8: bytes). One draw from ``rng``."""
    lo, hi = profile.uplink_mbit
    return math.exp(float(rng.uniform(math.log(lo * unit), math.log(hi * unit))))


def draw_down_ratio(profile: Profile, rng: Uniform) -> float:
    """One node's downlink / uplink, uniform over the profile's range. One draw from ``rng``."""
    lo, hi = profile.down_ratio
    return float(rng.uniform(lo, hi))


def draw(profile: Profile, n: int, rng: Uniform) -> list[NodeLink]:
    """Every node's line, from the seeded ``rng`` (an uplink, then a ratio, node by node)."""
    out = []
    for _ in range(n):
        up = draw_uplink(profile, rng)
        out.append(NodeLink(_kbit(up), _kbit(up * draw_down_ratio(profile, rng))))
    return out


def _kbit(bps: float) -> int:
    return min(max(round(bps / 1000), MIN_KBIT), MAX_KBIT)


_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kbit|mbit|gbit)?\s*$", re.IGNORECASE)
_UNIT = {"kbit": 1, "mbit": 1000, "gbit": 1_000_000}


def parse_rate(text: str) -> int:
    """``500kbit``, ``1mbit``, ``2.5mbit``, ``1gbit`` or a bare number of Mbit/s -> kbit/s."""
    m = _RATE.match(text)
    if m is None:
        raise LinkError(f"rate {text!r}: expected a number with kbit, mbit or gbit, e.g. 1mbit")
    kbit = float(m.group(1)) * _UNIT[(m.group(2) or "mbit").lower()]
    if not MIN_KBIT <= kbit <= MAX_KBIT:
        raise LinkError(f"rate {text!r}: must be between {MIN_KBIT}kbit and "
                        f"{MAX_KBIT // 1_000_000}gbit")
    return round(kbit)


def parse_setting(item: str, option: str, n: int) -> tuple[int, int]:
    """``node2=1mbit`` (or ``2=1mbit``) -> ``(2, 1000)``; ``option`` names the flag in errors."""
    name, sep, rate = item.partition("=")
    name = name.strip()
    index = name[4:] if name.startswith("node") else name
    if not sep or not index.isdigit():
        raise LinkError(f"{option} {item!r}: expected NODE=RATE, e.g. {option} node2=1mbit")
    if not 0 <= int(index) < n:
        raise LinkError(f"{option} {item!r}: there is no {name} in a testnet of {n} nodes")
    try:
        return int(index), parse_rate(rate)
    except LinkError as err:
        raise LinkError(f"{option} {item!r}: {err}") from None


def override(links: list[NodeLink], uplinks: dict[int, int],
             downlinks: dict[int, int]) -> list[NodeLink]:
    """``links`` with the user's settings (kbit/s by node index) in place of the draw."""
    return [NodeLink(uplinks.get(i, link.up_kbit), downlinks.get(i, link.down_kbit))
            for i, link in enumerate(links)]


def settings(items: list[str], option: str, n: int) -> dict[int, int]:
    """Every ``NODE=RATE`` of one option; a node named twice is an error, not a silent pick."""
    out: dict[int, int] = {}
    for item in items:
        index, kbit = parse_setting(item, option, n)
        if index in out:
            raise LinkError(f"{option}: node{index} is set twice")
        out[index] = kbit
    return out

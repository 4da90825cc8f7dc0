"""Network profiles (``lan``, ``continent``, ``planet``) and the delay a link adds: pure.

The one definition of what a profile's links are like, read by the namespace testnet's
launcher and relay and by the simulators (``testnet.fl_sim``). A profile says what one node's
access link is like: a one-way delay drawn per node from a range, a per-chunk jitter, a loss
rate, and an uplink and downlink bandwidth drawn per node (``testnet.wan.links``): volunteers'
lines differ by orders of magnitude (a DSL line's 1 Mbit/s up to fibre's hundreds), and a home
line's downlink is several times its uplink. The round trip between two nodes is
``2 * (access_a + access_b)`` plus jitter: each packet crosses the sender's access link and
the receiver's, as on the internet, where most of the delay is in the last miles and the
distance between them. The ranges are chosen so that every pair's round trip falls in the
profile's advertised range (``continent``: 20-80 ms; ``planet``: 50-300 ms).

The kernel here has no ``netem`` qdisc, so delay, jitter and loss are added by a userspace
relay (``testnet.wan.relay``) that the dialler's namespace redirects its TCP connections to;
bandwidth is the kernel's (``tbf`` on each veth). A relay carries a TCP byte stream, which
cannot lose bytes; a lost segment shows up to TCP as a retransmission one timeout later, so
that is what ``DelayLine`` adds: with probability ``1 - (1 - loss) ** segments`` a chunk is
held ``RTO`` longer (Linux: the round trip plus its 200 ms floor). A lost SYN costs the
initial 1 s SYN timeout. Order within a stream is always kept (jitter never reorders TCP).

Time and randomness come in as arguments; nothing here reads a clock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

MSS = 1448
"""Bytes of payload per TCP segment on a 1500-byte Ethernet MTU (with timestamps)."""
RTO_FLOOR = 0.200
"""Linux's minimum retransmission timeout (seconds)."""
SYN_RTO = 1.0
"""Linux's initial SYN retransmission timeout (seconds)."""


@dataclass(frozen=True)
class Profile:
    name: str
    access_ms: tuple[float, float]
    """Range of one node's one-way access delay (ms); drawn once per node."""
    jitter_ms: float
    """Each chunk waits an extra uniform [0, jitter] ms (one way)."""
    loss: float
    """Probability that a segment is lost (each direction)."""
    uplink_mbit: tuple[float, float]
    """Range of one node's uplink (Mbit/s), drawn log-uniformly once per node (tbf)."""
    down_ratio: tuple[float, float]
    """A node's downlink is its uplink times a factor drawn uniformly from this range."""
    round_trip_ms: tuple[float, float]
    """The round trips the profile advertises: every pair's (access delays and jitter) falls
    inside; a simulator without per-node delays draws a client's round trip from it."""
    description: str

    @property
    def relayed(self) -> bool:
        """Whether traffic goes through the delay relay at all (``lan`` has nothing to add)."""
        return self.access_ms[1] > 0 or self.jitter_ms > 0 or self.loss > 0

    def rtt_range_ms(self) -> tuple[float, float]:
        """The round trips (ms) this profile gives between two nodes, jitter included."""
        lo, hi = self.access_ms
        return 4 * lo, 4 * hi + 2 * self.jitter_ms


PROFILES: dict[str, Profile] = {
    p.name: p for p in (
        Profile("lan", (0.0, 0.0), 0.0, 0.0, (1000.0, 1000.0), (1.0, 1.0), (0.0, 0.0),
                "one switch: no added delay, 1 Gbit/s each way for every node"),
        # Office and cable/fibre lines within one region: 5-100 Mbit/s up, 1-4x that down.
        Profile("continent", (5.0, 19.0), 1.0, 0.0, (5.0, 100.0), (1.0, 4.0), (20.0, 80.0),
                "round trips 20-80 ms, uplinks 5-100 Mbit/s, downlinks 1-4x"),
        # Home lines the world over: a weak mobile or rural DSL uplink (0.5 Mbit/s) to a good
        # cable one (20 Mbit/s), downlinks 2-8x the uplink (ADSL, DOCSIS are that lopsided).
        Profile("planet", (12.5, 72.0), 3.0, 0.005, (0.5, 20.0), (2.0, 8.0), (50.0, 300.0),
                "round trips 50-300 ms, 0.5% loss, uplinks 0.5-20 Mbit/s, downlinks 2-8x"),
    )
}


class ProfileError(ValueError):
    """An unknown profile name (one line for the user)."""


def get(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError(f"unknown --wan profile {name!r}; choose one of "
                           f"{', '.join(PROFILES)}") from None


def draw_access(profile: Profile, n: int, rng: random.Random) -> list[float]:
    """Each node's one-way access delay (ms), from the seeded ``rng``."""
    lo, hi = profile.access_ms
    return [round(rng.uniform(lo, hi), 3) for _ in range(n)]


def pair_one_way_ms(access_a: float, access_b: float) -> float:
    """One-way delay between two nodes before jitter (ms)."""
    return access_a + access_b


class DelayLine:
    """One direction of one relayed connection: when each chunk read may be written on.

    ``schedule(now, nbytes)`` returns the time the chunk is due at the far end; successive
    times never decrease (TCP keeps order). ``hold_until`` makes the first bytes wait for a
    handshake (see ``handshake_done``).
    """

    def __init__(self, one_way_ms: float, jitter_ms: float, loss: float,
                 rng: random.Random) -> None:
        if one_way_ms < 0 or jitter_ms < 0 or not 0 <= loss < 1:
            raise ValueError("delay, jitter must be >= 0 and loss in [0, 1)")
        self.one_way = one_way_ms / 1000.0
        self.jitter = jitter_ms / 1000.0
        self.loss = loss
        self.rng = rng
        self.last = 0.0
        self.retransmissions = 0

    def rto(self) -> float:
        """What one lost segment costs: the round trip plus Linux's 200 ms floor."""
        return 2 * self.one_way + RTO_FLOOR

    def schedule(self, now: float, nbytes: int) -> float:
        due = now + self.one_way
        if self.jitter:
            due += self.rng.uniform(0.0, self.jitter)
        if self.loss and nbytes > 0:
            segments = math.ceil(nbytes / MSS)
            if self.rng.random() < 1.0 - (1.0 - self.loss) ** segments:
                due += self.rto()
                self.retransmissions += 1
        due = max(due, self.last)
        self.last = due
        return due

    def syn_delay(self) -> float:
        """How long a new connection's SYN takes to arrive (lost SYNs wait 1 s each)."""
        delay = self.one_way
        while self.loss and self.rng.random() < self.loss:
            delay += SYN_RTO
            self.retransmissions += 1
        return delay

    def hold_until(self, t: float) -> None:
        self.last = max(self.last, t)


def handshake_done(accepted_at: float, one_way_s: float, syn_delay_s: float) -> float:
    """The earliest time a dialler's first bytes can reach the far end.

    The relay accepts the dialler's connection at once (locally), so the dialler sends before
    a real handshake would let it: its bytes are held until the SYN has arrived, the SYN-ACK
    come back and the data crossed again (``accepted + syn + 2 * one_way``).
    """
    return accepted_at + syn_delay_s + 2 * one_way_s

"""Which peers speak other versions of our protocols, from what libp2p's identify told us.

Every NovaCron protocol id is ``/novacron/NAME/VERSION``; a wire change bumps VERSION, so a
node of another release cannot open a stream it would misread: stream negotiation refuses it.
That keeps the two apart safely but silently: tasks, soft state and votes just never arrive.
Identify (which every libp2p host runs on each new connection) lists the protocols a peer
serves, so comparing that list with ours names the cause: "3 peers speak /novacron/crdt/1
where this node speaks /2" is something a volunteer can act on (upgrade whichever is older).

Pure: the host hands in the protocol lists; nothing here touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PREFIX = "/novacron/"
MAX_SHOWN = 3
"""Protocols named in the status line; the rest are counted."""


def families(protocols: Iterable[str]) -> dict[str, set[str]]:
    """``/novacron/NAME/VERSION`` ids grouped by NAME (others, e.g. libp2p's own, ignored)."""
    out: dict[str, set[str]] = {}
    for proto in protocols:
        if not proto.startswith(PREFIX):
            continue
        name, sep, version = proto[len(PREFIX):].rpartition("/")
        if sep and name and version:
            out.setdefault(name, set()).add(version)
    return out


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Protocols both sides name, with no version in common: ``(name, ours, theirs)``."""

    protocols: tuple[tuple[str, str, str], ...]

    def describe(self) -> str:
        shown = [f"/novacron/{name}/{theirs} where this node speaks /{ours}"
                 for name, ours, theirs in self.protocols[:MAX_SHOWN]]
        more = len(self.protocols) - MAX_SHOWN
        return ", ".join(shown) + (f" (and {more} more)" if more > 0 else "")


def compare(ours: Iterable[str], theirs: Iterable[str]) -> Mismatch | None:
    """None when the peer can talk to us: it shares a version of every NovaCron protocol
    we both know by name, or names none of ours (not identified yet, or not a NovaCron node:
    nothing to say about it). A protocol only one side has is a feature, not a conflict."""
    mine, other = families(ours), families(theirs)
    clash = tuple(sorted((name, "|".join(sorted(mine[name])), "|".join(sorted(other[name])))
                         for name in mine.keys() & other.keys()
                         if not mine[name] & other[name]))
    return Mismatch(clash) if clash else None


def health_line(mismatches: Mapping[str, Mismatch], connected: int) -> str | None:
    """The status line for connected peers that cannot talk to us, or None if there are none."""
    if not mismatches:
        return None
    first = mismatches[min(mismatches)]
    n = len(mismatches)
    return (f"{n} of {connected} connected peers speak other versions of our protocols"
            f" ({first.describe()}): they cannot work with this node; upgrade whichever"
            " runs the older novacron")

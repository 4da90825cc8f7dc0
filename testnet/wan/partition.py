"""``testnet partition A,B / C,D`` and ``heal``: parsing groups and the core's drop rules.

A partition is a set of groups; nodes talk only within their group. It is enforced in the
core namespace (the testnet's internet) by dropping forwarded packets between groups, by
their public addresses (a NAT'ed node's is its router's). Packets of connections that were
open are dropped too, so a partition looks like the internet's: silence, not resets, and the
daemons must notice it by themselves. ``heal`` removes the table; TCP then delivers what it
retransmits. Pure: this module builds text and checks names; the launcher runs ``nft``.
"""

from __future__ import annotations

from collections.abc import Sequence

TABLE = "novacron_partition"


class PartitionError(ValueError):
    """A malformed partition (one line for the user)."""


def parse(words: Sequence[str], names: Sequence[str]) -> list[list[str]]:
    """Groups of node names from ``A,B / C,D`` (names or indices; spaces optional).

    One group alone is cut off from all the others; with several, every node must be in
    exactly one of them.
    """
    text = " ".join(words)
    groups: list[list[str]] = []
    for part in text.split("/"):
        refs = [r for r in part.replace(" ", ",").split(",") if r]
        if not refs:
            raise PartitionError(f"empty group in {text!r}; write e.g. `0,1 / 2,3,4`")
        groups.append([_resolve(r, names) for r in refs])
    seen: dict[str, int] = {}
    for gi, group in enumerate(groups):
        for name in group:
            if name in seen and seen[name] != gi:
                raise PartitionError(f"{name} is in two groups; each node belongs to one side")
            seen[name] = gi
    if len(groups) == 1:
        rest = [n for n in names if n not in seen]
        if not rest:
            raise PartitionError("that group holds every node; name the nodes to cut off")
        groups.append(rest)
    missing = [n for n in names if n not in seen and all(n not in g for g in groups)]
    if missing:
        raise PartitionError(f"{missing[0]} is in no group; list every node, or give one "
                             f"group alone to cut it off from the rest")
    return [sorted(set(g), key=names.index) for g in groups]


def _resolve(ref: str, names: Sequence[str]) -> str:
    for name in names:
        if ref == name or ref == name.removeprefix("node"):
            return name
    raise PartitionError(f"no node {ref!r} in this testnet (nodes: {', '.join(names)})")


def rules(groups: Sequence[Sequence[str]], public_ip: dict[str, str]) -> str:
    """The core's table dropping every packet between two different groups."""
    sets = []
    drops = []
    for gi, group in enumerate(groups):
        ips = ", ".join(public_ip[name] for name in group)
        sets.append(f"  set g{gi} {{ type ipv4_addr; elements = {{ {ips} }} }}")
    for a in range(len(groups)):
        for b in range(len(groups)):
            if a != b:
                drops.append(f"    ip saddr @g{a} ip daddr @g{b} drop")
    return (f"table ip {TABLE} {{\n" + "\n".join(sets) + "\n"
            "  chain forward {\n    type filter hook forward priority -10; policy accept;\n"
            + "\n".join(drops) + "\n  }\n}\n")

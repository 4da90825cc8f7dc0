"""Pruning nodes that left: only at a stable point, and never to be resurrected.

Theory of operation
-------------------
Membership is hard state: the committee decides, per epoch, who is in. When it says nodes
left, their entries (a departed node's capability record, its load, its links) should go, and
so should their context entries, or every context keeps an integer per node that ever joined.

Removing them is only safe at a *stable point*: per object, a version vector that every
current member has acknowledged (``stable_point``, the meet of the members' last digests and
our own context). A departed node ``r`` is pruned from this replica when its knowledge of ``r``
is exactly the stable prefix ``1..stable[r]`` in every object. Then every member removes the
same entries (the effects of ``r``'s last mutations, e.g. what they overwrote, are everywhere
already), and the replicas agree afterwards without exchanging anything.

From then on every dot of ``r`` is dropped on arrival (``CrdtReplica`` strips them before a join),
so an old delta still in flight, or the state of a lagging peer that has not pruned yet,
cannot bring ``r``'s entries back. The pruned prefix is remembered per object (one integer,
in ``departed``): if the committee re-admits ``r``, ``readmit`` puts the prefix back into the
contexts, so ``r``'s old dots still count as seen while its new ones are accepted; ``r`` learns
its old counter from our digest and continues above it.

A counter loses a pruned node's contribution with its entry: soft state wants that (a node that
left carries no load), unlike a billing counter, which would not be soft state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from crdt.causal import Causal
from crdt.dots import CausalContext, meet_vectors

Departed = dict[str, dict[str, int]]
"""Pruned node -> object name -> the counter prefix pruned."""


def stable_point(objects: Mapping[str, Causal], digests: Iterable[Mapping[str, CausalContext]]
                 ) -> dict[str, dict[str, int]]:
    """Per object, the version vector seen by us and by every digest given."""
    digests = list(digests)
    return {name: meet_vectors([obj.ctx.vv] + [d.get(name, CausalContext()).vv
                                               for d in digests])
            for name, obj in objects.items()}


def prune(objects: dict[str, Causal], departed: Departed, nodes: Iterable[str],
          stable: Mapping[str, Mapping[str, int]]) -> set[str]:
    """Prune ``nodes`` from ``objects`` where ``stable`` allows; record them in ``departed``.
    Returns the nodes pruned now."""
    done: set[str] = set()
    for r in sorted(set(nodes) - departed.keys()):
        floors = {}
        for name, obj in objects.items():
            want = stable.get(name, {}).get(r, 0)
            if obj.ctx.intervals(r) != ([(1, want)] if want else []):
                break  # we know more (or less) of r than every member has
            floors[name] = want
        else:
            for name, obj in list(objects.items()):
                objects[name] = obj.without_replicas({r})
            departed[r] = floors
            done.add(r)
    return done


def readmit(objects: dict[str, Causal], departed: Departed, nodes: Iterable[str]) -> None:
    """Re-admitted nodes: accept their new writes, keep the pruned ones buried."""
    for r in nodes:
        floors = departed.pop(r, None)
        for name, n in (floors or {}).items():
            if name in objects and n:
                objects[name].ctx.add_range(r, 1, n)


__all__ = ["Departed", "prune", "readmit", "stable_point"]

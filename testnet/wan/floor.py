"""The network's own floor under a PBFT commit on a WAN testnet: pure.

A commit measured on a testnet is the network's part (the message delays of PBFT's phases on
the profile's lines) plus everything else: CPU, queues, the lines' bandwidth. On one machine
running 30 daemons the second part is large, and which member is primary moves the first by
half a round trip or more (a primary far from everyone delays every phase). This computes the
first part alone, for the committee, primary and client of a measurement, so a figure can say
which part is which (``scripts/bench_wan.py``'s ``pbft_commit``).

The model is the replica's normal case (``consensus.replica``) on the profile's additive
delays (one way from a to b: ``pair_one_way_ms``), with no CPU time and no queueing:

- the client, itself a member, sends its request to every member; the primary's pre-prepare
  (by reference) leaves when the request reaches it, and reaches member j one hop later;
- a backup sends its prepare when it has the pre-prepare and the request; a member is prepared
  with the pre-prepare and q-1 prepares of members other than the primary (its own among them);
- a member sends its commit when prepared, and commits with q commits (its own among them);
- the client takes its own replica's reply (``consensus.client``): done when its replica
  commits.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.quorum import quorum_size
from testnet.wan.profiles import pair_one_way_ms


def commit_floor_ms(access_ms: Sequence[float], members: Sequence[int], primary: int,
                    client: int) -> float:
    """The earliest the client's replica can commit its request (ms), by message delays alone.

    ``members`` are node indexes into ``access_ms`` (each node's one-way access delay);
    ``primary`` and ``client`` are among them."""
    if primary not in members or client not in members:
        raise ValueError("the primary and the client must be members")
    q = quorum_size(len(members))

    def d(a: int, b: int) -> float:
        return 0.0 if a == b else pair_one_way_ms(access_ms[a], access_ms[b])

    to_primary = d(client, primary)
    pre_prepared = {j: max(to_primary + d(primary, j), d(client, j)) for j in members}
    prepared = {}
    for i in members:
        others = sorted(pre_prepared[j] + d(j, i) for j in members if j not in (i, primary))
        need = q - 1 if i == primary else q - 2  # a backup's own prepare counts
        prepared[i] = max(pre_prepared[i], others[need - 1]) if need > 0 else pre_prepared[i]
    others = sorted(prepared[j] + d(j, client) for j in members if j != client)
    return max(prepared[client], others[q - 2]) if q > 1 else prepared[client]

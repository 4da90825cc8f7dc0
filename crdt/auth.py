"""Who may write what: signed dots, proven heads, and the checks a replica runs before a join.

The rule
--------
A dot ``(replica, counter)`` belongs to ``replica``, a node id, and a node id *is* an Ed25519
public key (``protocol.identity``). Every mutation makes exactly one fresh dot, and its writer
signs that dot (domain ``protocol.domains.CRDT_DOT``, bound to the network and object name):

- a *write* (the mutation leaves an entry) signs a digest of the object name, the entry's path
  and its payload; the signature travels with the entry for as long as it is live;
- a *cover* (remove, clear: no entry) signs a digest of the dots it covers; that signature
  lives on as the writer's *head* if it is the writer's latest mutation.

``heads[r]`` is the newest signed mutation of ``r`` a replica holds: ``(counter, digest,
signature)``, checkable without the mutation itself. A replica accepts a message, whoever sent
it, only if (``check_plan``):

1. **writes are the writer's**: every entry it does not already have carries a valid
   signature by the node its dot names (``ForgedDot``). No node can make, alter or replay as
   new another node's write, however many relays and joins it went through;
2. **covers stay within what exists**: every dot the message's context adds that is not one of
   those entries is at most its owner's *proven head* (the highest counter we hold a checked
   signature for, from our state or from the message's ``heads``) (``UnprovenDot``). Removing
   what exists is what an observed-remove type lets any node do; covering a dot that was never
   issued would silently discard that node's *future* write, and that is refused;
3. **owner-keyed objects** (``Policy.OWNER_KEYED``, the "node -> its own record" tables such
   as the capability registry): an entry under key ``k`` must be written by ``k``, and an entry
   of ``k`` only dies when ``k``'s proven head is past it, i.e. ``k`` itself made a later
   mutation (``ForbiddenWrite``). Nobody can write or delete another node's record.

The envelope signer plays no part in these rules: it is the *relayer*. Delta-interval
anti-entropy forwards joined deltas that mix many writers, and a full state (the fallback for
a peer that is too far behind) carries everybody's writes; the envelope authenticates the
peer to blame and rate-limit, while each write stays attributable to its own writer.

The trade-off
-------------
Attributing every mutation forever would need a record per remove: a tombstone. So writes are
attributable forever (64 bytes per live entry), while a remove is attributable only as long as
it is its writer's head; once joined into a context, "dot d is covered" says nothing of who
covered it. A relayer can therefore claim an existing write was removed, exactly as if it had
removed it itself (allowed by OR semantics in shared objects, refused by rule 3 in owner-keyed
ones); it cannot invent, alter or pre-empt anyone's writes. The stricter alternative, deltas
that carry only their signer's own mutations, cannot catch a reconnecting node up from any one
peer (third parties' writes would have to be trusted wholesale in a full state, or kept as a
log of original envelopes, which is a tombstone per mutation).

Costs: one signature per local mutation (~40 us), one verification per entry new to a
receiver, one head per writer. Unsigned replicas (``signer=None``) skip all of it: for the
in-process simulator at 50 nodes and for benchmarks of the lattice itself.
"""

from __future__ import annotations

import hashlib
from enum import Enum

from protocol import domains
from protocol.canonical import packb
from protocol.identity import NodeIdentity, public_key_from_node_id, verify_signature

from crdt.causal import Causal, Head, Patch, Plan, head_wins
from crdt.dots import CausalContext, Dot
from crdt.dotstore import Path
from crdt.errors import CrdtUsageError, ForbiddenWrite, ForgedDot, UnprovenDot


class Policy(Enum):
    """Who may change which part of an object."""

    SHARED = "shared"
    """Any node may write any key and remove what it has seen (OR semantics)."""
    OWNER_KEYED = "owner_keyed"
    """Top-level keys are node ids; only that node writes or removes under its key."""


def write_digest(name: str, path: Path, payload: tuple[object, ...]) -> bytes:
    return hashlib.blake2b(packb([name, list(path), list(payload)], maps=False),
                           digest_size=32).digest()


def cover_digest(name: str, covered: CausalContext) -> bytes:
    rows = [[r] + [x for rng in covered.intervals(r) for x in rng]
            for r in sorted(covered.replicas())]
    return hashlib.blake2b(packb([name, "covers", rows], maps=False), digest_size=32).digest()


def signed_bytes(network: str, name: str, replica: str, counter: int, digest: bytes) -> bytes:
    return b"".join((domains.CRDT_DOT, network.encode(), b"\x00", name.encode(), b"\x00",
                     replica.encode(), b"\x00", counter.to_bytes(8, "big"), digest))


def _short(r: str) -> str:
    return r if len(r) <= 20 else r[:16] + "..."


class DotSigner:
    """Signs this node's mutations."""

    __slots__ = ("identity", "network")

    def __init__(self, identity: NodeIdentity, network: str) -> None:
        self.identity = identity
        self.network = network

    @property
    def replica(self) -> str:
        return self.identity.node_id

    def sign_patch(self, name: str, patch: Patch, dot: Dot) -> tuple[bytes | None, Head]:
        """Sign a local patch whose fresh dot is ``dot``: ``(entry signature or None, head)``."""
        entry = next((e for p, e in patch.entries if (e[0], e[1]) == dot), None)
        if entry is not None:
            path = next(p for p, e in patch.entries if e is entry)
            digest = write_digest(name, path, entry[2:])
        else:
            digest = cover_digest(name, patch.ctx)
        sig = self.identity.sign(signed_bytes(self.network, name, dot[0], dot[1], digest))
        return (sig if entry is not None else None), (dot[1], digest, sig)


class DotVerifier:
    """Checks other nodes' dot signatures; caches node id -> public key."""

    __slots__ = ("network", "_keys", "verified")

    def __init__(self, network: str) -> None:
        self.network = network
        self._keys: dict[str, bytes] = {}
        self.verified = 0

    def key(self, replica: str) -> bytes:
        pk = self._keys.get(replica)
        if pk is None:
            pk = public_key_from_node_id(replica)  # MalformedMessage if not a peer id
            if len(self._keys) > 65536:
                self._keys.clear()
            self._keys[replica] = pk
        return pk

    def verify(self, name: str, replica: str, counter: int, digest: bytes, sig: bytes) -> bool:
        self.verified += 1
        return verify_signature(self.key(replica),
                                signed_bytes(self.network, name, replica, counter, digest), sig)


def own_dot(patch: Patch, replica: str) -> Dot:
    """The fresh dot of a local patch: the writer's highest dot in its context."""
    return (replica, patch.ctx.max(replica))


def check_local_patch(obj: Causal, patch: Patch, replica: str, policy: Policy) -> None:
    """Our own mutation must obey the object's policy (a bug of ours if not)."""
    if policy is not Policy.OWNER_KEYED:
        return
    for path, _ in patch.entries:
        if path[0] != replica:
            raise CrdtUsageError(f"owner-keyed object: node {_short(replica)} may only write "
                                 f"under its own key, not {path[0]!r:.40}")
    if patch.ctx.count() <= len(obj.index):
        covered = [(d, obj.index.get(d)) for d in patch.ctx.iter_dots()]
    else:
        covered = [(d, p) for d, p in obj.index.items() if patch.ctx.contains(*d)]
    for _, live in covered:
        if live is not None and live[0] != replica:
            raise CrdtUsageError("owner-keyed object: a node may not remove another node's "
                                 "record")


def proven_head(obj: Causal, replica: str) -> int:
    h = obj.heads.get(replica)
    return max(h[0] if h else 0, obj.ctx.max(replica))


def check_plan(name: str, obj: Causal, plan: Plan, verifier: DotVerifier | None,
               policy: Policy) -> None:
    """Raise if joining ``plan.other`` into ``obj`` breaks the rules above; otherwise add the
    heads the plan's verified entries prove to ``plan.heads``. Changes nothing else."""
    proven: dict[str, int] = {}
    if verifier is not None:
        sigs = plan.other.sigs
        for path, e in plan.added:
            r, c = e[0], e[1]
            sig = sigs.get((r, c))
            digest = write_digest(name, path, e[2:])
            if sig is None or not verifier.verify(name, r, c, digest, sig):
                raise ForgedDot(
                    f"object {name!r}: the write with dot ({_short(r)}, {c}) under key "
                    f"{path[:1]!r:.60} is not signed by its writer {_short(r)}; a node may "
                    "only write its own dots"
                )
            if c > proven.get(r, 0):
                proven[r] = c
                if r not in plan.heads or plan.heads[r][0] < c:
                    head = (c, digest, sig)
                    if r not in obj.heads or head_wins(head, obj.heads[r]):
                        plan.heads[r] = head
        for r, (c, digest, sig) in list(plan.heads.items()):
            if proven.get(r) == c:
                continue  # the head is one of the entries just verified
            if not verifier.verify(name, r, c, digest, sig):
                raise ForgedDot(f"object {name!r}: the head ({_short(r)}, {c}) is not signed "
                                f"by {_short(r)}")
            proven[r] = max(proven.get(r, 0), c)
        for r in plan.new_ctx.replicas():
            claim = plan.new_ctx.max(r)
            limit = max(proven.get(r, 0), proven_head(obj, r))
            if claim > limit:
                raise UnprovenDot(
                    f"object {name!r}: the context covers dot ({_short(r)}, {claim}) but "
                    f"{_short(r)}'s last signed mutation known here is {limit}; a node may "
                    "cover what exists, never another node's future writes"
                )
    if policy is Policy.OWNER_KEYED:
        _check_owner_keyed(name, obj, plan, proven)


def _check_owner_keyed(name: str, obj: Causal, plan: Plan, proven: dict[str, int]) -> None:
    replaced = set()
    for path, e in plan.added:
        if path[0] != e[0]:
            raise ForbiddenWrite(f"object {name!r} is owner-keyed: {_short(e[0])} may not "
                                 f"write under the key of {str(path[0])[:20]!r}")
        replaced.add((e[0], e[1]))
    for path, e in plan.killed:
        if e[0] != path[0] or (e[0], e[1]) in replaced:
            continue  # a stray entry, or one write replaced by its equivocating twin
        owner: str = e[0]
        after = max(proven.get(owner, 0), proven_head(obj, owner), plan.new_ctx.max(owner))
        if after <= e[1]:
            raise ForbiddenWrite(f"object {name!r} is owner-keyed: only {_short(e[0])} may "
                                 "remove or replace its own record")


__all__ = ["DotSigner", "DotVerifier", "Policy", "check_local_patch", "check_plan",
           "cover_digest", "own_dot", "proven_head", "signed_bytes", "write_digest"]

"""Delta-state CRDTs for NovaCron's soft state. Pure: no I/O, no clock reads, no randomness.

Modules, from the bottom up:

- ``dots``        -- ``Dot`` and ``CausalContext`` (version vector + outstanding ranges).
- ``dotstore``    -- dot stores as nested maps over flat, hashable leaf entries; the join.
- ``causal``      -- ``Causal``, the base of every type: store + context, live-dot index,
                     planned joins (``diff`` / ``apply``), effective deltas, views for nesting.
- ``hlc``         -- ``HybridClock`` and ``Writer`` (who mutates, at which HLC time).
- ``values``      -- what may be stored (keys, canonical msgpack values) and the size caps.
- ``orset``       -- ``ORSet``: add-wins observed-remove set.
- ``ormap``       -- ``ORMap``: observed-remove map of nested causal CRDTs.
- ``lww``         -- ``LWWRegister`` and ``LWWMap``, ordered by HLC then node id.
- ``mvreg``       -- ``MVRegister``: concurrent writes kept and shown.
- ``counters``    -- ``GCounter`` and ``PNCounter``.
- ``codec``       -- compact msgpack form (interned node ids), strict capped decoding,
                     snapshots that load back exactly.
- ``auth``        -- signed dots, proven heads, write policies: who may write what.
- ``antientropy`` -- delta buffers, acknowledgements, digests, full-state fallback.
- ``transfer``    -- states over the message budget, sent in parts and joined at once.
- ``prune``       -- removing departed nodes at a stable point, for good.
- ``replica``     -- ``CrdtReplica``: the facade the daemon drives.
- ``errors``      -- the CRDT rejections (``RemoteProtocolError`` subclasses).
"""

from crdt.antientropy import AntiEntropyConfig
from crdt.auth import DotSigner, DotVerifier, Policy
from crdt.causal import Causal, Patch, Plan
from crdt.codec import load, snapshot
from crdt.counters import GCounter, PNCounter
from crdt.dots import CausalContext, Dot, meet_vectors
from crdt.errors import (
    ClockSkew,
    CrdtRejected,
    CrdtUsageError,
    ForbiddenWrite,
    ForgedDot,
    UnprovenDot,
)
from crdt.hlc import HybridClock, Timestamp, Writer
from crdt.lww import LWWMap, LWWRegister
from crdt.mvreg import MVRegister
from crdt.ormap import ORMap
from crdt.orset import ORSet
from crdt.replica import ObjectSpec, Outgoing, CrdtReplica
from crdt.values import Limits

__all__ = [
    "AntiEntropyConfig", "Causal", "CausalContext", "ClockSkew", "CrdtRejected",
    "CrdtUsageError", "Dot", "DotSigner", "DotVerifier", "ForbiddenWrite", "ForgedDot",
    "GCounter", "HybridClock", "LWWMap", "LWWRegister", "Limits", "MVRegister", "ORMap",
    "ORSet", "ObjectSpec", "Outgoing", "PNCounter", "Patch", "Plan", "Policy", "CrdtReplica",
    "Timestamp", "UnprovenDot", "Writer", "load", "meet_vectors", "snapshot",
]

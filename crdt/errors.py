"""Errors of the ``crdt`` package, placed in the protocol error tree.

Everything a peer can make a replica reject is a ``protocol.errors.RemoteProtocolError``
subclass with a ``reason`` slug (the daemon counts it against the peer that sent the message,
which is the envelope's signer, not the writer a dot names). Our own misuse of the API
(writing another node's key, an unknown object name) is a ``LocalProtocolError``.

Byte-level problems (not msgpack, wrong shape, over a cap) reuse the protocol's
``MalformedMessage`` and ``MessageTooLarge``; the classes here are the CRDT-specific rules.
"""

from __future__ import annotations

from protocol.errors import LocalProtocolError, RemoteProtocolError


class CrdtRejected(RemoteProtocolError):
    """A well-formed CRDT message that breaks one of the replication rules."""

    reason = "crdt_rejected"


class ForgedDot(CrdtRejected):
    """A write whose dot is not signed by the node the dot names: a node may only write its
    own dots."""

    reason = "crdt_forged_dot"


class UnprovenDot(CrdtRejected):
    """A causal context that claims dots of a node beyond that node's last signed mutation:
    a node may cover (remove) what it has seen, never another node's future writes."""

    reason = "crdt_unproven_dot"


class ForbiddenWrite(CrdtRejected):
    """A change an object's write policy forbids (another node's key in an owner-keyed map)."""

    reason = "crdt_forbidden_write"


class ClockSkew(CrdtRejected):
    """A hybrid-logical-clock timestamp too far ahead of this node's physical clock."""

    reason = "crdt_clock_skew"


class CrdtUsageError(LocalProtocolError):
    """The local caller misused the CRDT API (our bug, not a peer's)."""

    reason = "crdt_usage"


__all__ = ["ClockSkew", "CrdtRejected", "CrdtUsageError", "ForbiddenWrite", "ForgedDot",
           "UnprovenDot"]

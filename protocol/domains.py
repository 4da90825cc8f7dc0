"""Signing domains: every use of a node key signs bytes that start with its own tag.

One Ed25519 key signs envelopes, quorum-certificate votes, attestation bindings and more. A tag
per use, fixed here in one list, means a signature made for one use can never be replayed as
another (a vote cannot pass for an envelope, a testnet message for a mainnet one).
"""

from __future__ import annotations

ENVELOPE = b"novacron/envelope/v1\x00"
QUORUM_VOTE = b"novacron/quorum-vote/v1\x00"
ATTESTATION = b"novacron/attestation/v1\x00"
RESULT = b"novacron/task-result/v1\x00"
CRDT_DOT = b"novacron/crdt-dot/v1\x00"
"""A CRDT mutation: the writer signs each dot it makes, so the write stays attributable to it
after any number of relays and joins (``crdt.auth``)."""

ALL = (ENVELOPE, QUORUM_VOTE, ATTESTATION, RESULT, CRDT_DOT)
assert len(set(ALL)) == len(ALL) and all(not a.startswith(b) for a in ALL for b in ALL if a != b)

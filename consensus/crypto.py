"""The signing seam: how a replica seals its messages, signs votes and checks others'.

The replica code never calls Ed25519 directly. It holds a ``Signer`` (its own key) and a
``Verifier`` (everyone's keys), so the very same replica runs

- in the daemon and the normal test suite with ``Ed25519Signer`` / ``Ed25519Verifier``: real
  signed envelopes (``protocol.envelope``) and real Ed25519 votes;
- in the many-seed simulator with ``MacSigner`` / ``MacVerifier``: the *same envelope bytes*,
  but the 64-byte signature is a keyed BLAKE2b-512 MAC under a per-node secret. A node can only
  MAC with its own secret, so forgery is as impossible in the simulation as with signatures;
  what is lost is only that a third party could check without the secrets, which the
  simulation's checker does not need.

``Verifier.open`` checks embedded evidence (prepared certificates, checkpoint proofs,
view-change sets, client requests in a batch): it verifies a signature and decodes, with no
replay window or clock check, because evidence is old by design. The daemon's shell opens
*incoming* envelopes with ``protocol.envelope.EnvelopeOpener`` (replay window, skew check) and
hands the resulting ``Envelope`` to the replica.

``Ed25519Verifier.open_direct`` opens a prepare or commit that came straight from its sender
over the sender's own Noise session without checking the envelope's signature: the session
proved who wrote it, the vote inside is signed on its own (prepares are checked on arrival,
commits when they form a certificate), and the envelope is kept only as local evidence of
equivocation, which the replica checks before it offers it to anyone (``Replica
._equivocation``). CometBFT likewise signs votes, not the connection's messages. These two
types are nearly all a member receives while ordering (in a 19-member committee, 35 of the
36 envelopes per batch: a pre-prepare, 17 prepares, 18 commits), and the envelope signature was
75 us of the 83 us it took to open one.

A ``Reply`` from the sender's own session is taken on the channel's word too: the client only
counts matching replies from distinct members and keeps none, as PBFT's clients check replies
by MAC. A client on a member of a 19-member committee got 18 of them per request, each an
envelope signature to check on the busiest node (often the primary as well).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

from protocol import domains
from protocol.canonical import packb, unpackb
from protocol.envelope import (
    FORMAT,
    HEADER_SIZE,
    MAGIC,
    Envelope,
    _signed_bytes,
    open_envelope,
    peek_type,
    seal,
)
from protocol.errors import BadSignature, MalformedMessage, WrongNetwork
from protocol.identity import NodeIdentity, public_key_from_node_id, verify_signature
from protocol.schema import REGISTRY, encode_body, message_type


class Signer(Protocol):
    """This replica's key: seals outgoing messages and signs quorum votes."""

    @property
    def public_key(self) -> bytes: ...

    def seal(self, msg: Any, now: float) -> bytes:
        """Signed wire bytes of ``msg``; ``now`` is the replica's latest virtual/monotonic time."""
        ...

    def sign_vote(self, data: bytes) -> bytes:
        """64-byte signature of ``domains.QUORUM_VOTE || data``."""
        ...


class Verifier(Protocol):
    network: str
    """The network envelopes are signed for (a pre-prepare by reference is rebuilt with it)."""

    def open(self, raw: bytes) -> Envelope:
        """Verify and decode signed bytes; raises ``RemoteProtocolError`` subclasses only."""
        ...

    def verify_vote(self, public_key: bytes, data: bytes, signature: bytes) -> bool: ...


def vote_message(data: bytes) -> bytes:
    return domains.QUORUM_VOTE + data


# -- the real thing -------------------------------------------------------------------------------


class Ed25519Signer:
    """Real envelopes (``protocol.envelope.seal``) and Ed25519 votes, numbered within
    ``context`` (pick a fresh random one per process start). ``clock_ms(now)`` turns the
    replica's time into the envelope's wall-clock timestamp (the daemon passes its own clock).

    Bodies are not re-validated against their schema (``validate=False``): the replica builds
    them from checked values, and the one field an application fills - a reply's result - is
    bounded by ``Service``. That re-check was a tenth of the replica's CPU."""

    __slots__ = ("identity", "network", "context", "seq", "_clock_ms")

    def __init__(self, identity: NodeIdentity, network: str, context: int,
                 clock_ms: Any = None) -> None:
        self.identity = identity
        self.network = network
        self.context = context
        self.seq = 0
        self._clock_ms = clock_ms or (lambda now: int(now * 1000))

    @property
    def public_key(self) -> bytes:
        return self.identity.public_key

    def seal(self, msg: Any, now: float) -> bytes:
        self.seq += 1
        return seal(self.identity, self.network, msg, context=self.context, seq=self.seq,
                    timestamp_ms=self._clock_ms(now), validate=False)

    def sign_vote(self, data: bytes) -> bytes:
        return self.identity.sign(vote_message(data))


class Ed25519Verifier:
    """Checks envelopes and votes with the public keys they name (no key list needed)."""

    __slots__ = ("network",)

    def __init__(self, network: str) -> None:
        self.network = network

    def open(self, raw: bytes) -> Envelope:
        return open_envelope(raw, network=self.network)

    def open_direct(self, raw: bytes, peer: str) -> Envelope:
        """``raw`` as read from ``peer``'s own connection (not relayed): a vote or reply
        envelope naming ``peer`` as its sender is taken on the channel's word (module
        docstring); anything else is verified as ``open`` does."""
        channel = None
        if peek_type(raw) in CHANNEL_TAKEN:
            try:
                channel = public_key_from_node_id(peer)
            except MalformedMessage:
                pass  # a peer id of another key type: no member; check the signature
        return open_envelope(raw, network=self.network, channel_sender=channel)

    def verify_vote(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        return verify_signature(public_key, vote_message(data), signature)


CHANNEL_VOTES = frozenset({"pbft.prepare", "pbft.commit"})
"""Votes: signed on their own inside, their envelopes taken on the channel's word."""
CHANNEL_TAKEN = CHANNEL_VOTES | {"pbft.reply"}
"""Envelope types ``open_direct`` takes on the channel's word (module docstring)."""


# -- the simulator's stand-in ---------------------------------------------------------------------


def _mac(secret: bytes, data: bytes) -> bytes:
    return hashlib.blake2b(data, key=secret, digest_size=64).digest()


class MacSigner:
    """Envelope bytes exactly as ``protocol.envelope.seal`` lays them out, MAC instead of
    signature. Skips the schema re-validation of outgoing bodies (the replica builds them)."""

    __slots__ = ("public_key", "secret", "network", "seq")

    def __init__(self, public_key: bytes, secret: bytes, network: str) -> None:
        self.public_key = public_key
        self.secret = secret
        self.network = network
        self.seq = 0

    def seal(self, msg: Any, now: float) -> bytes:
        type_name, version = message_type(msg)
        self.seq += 1
        payload = packb([version, self.network, type_name, self.public_key, 0, self.seq,
                         int(now * 1000), encode_body(msg, validate=False)], maps=False)
        mac = _mac(self.secret, _signed_bytes(self.network, type_name, payload))
        return MAGIC + bytes([FORMAT]) + mac + payload

    def sign_vote(self, data: bytes) -> bytes:
        return _mac(self.secret, vote_message(data))


class MacVerifier:
    """Knows every simulated node's secret (by public key). Caches opened bytes, since in the
    simulator one broadcast is opened by every receiver and decoding is pure."""

    __slots__ = ("network", "secrets", "_cache", "max_cache")

    def __init__(self, network: str, secrets: Mapping[bytes, bytes], max_cache: int = 200_000):
        self.network = network
        self.secrets = secrets
        self._cache: dict[bytes, Envelope] = {}
        self.max_cache = max_cache

    def open(self, raw: bytes) -> Envelope:
        env = self._cache.get(raw)
        if env is not None:
            return env
        env = self._open(raw)
        if len(self._cache) >= self.max_cache:
            self._cache.clear()
        self._cache[raw] = env
        return env

    def _open(self, raw: bytes) -> Envelope:
        if type(raw) is not bytes or len(raw) <= HEADER_SIZE or raw[:2] != MAGIC \
                or raw[2] != FORMAT:
            raise MalformedMessage("not a NovaCron envelope")
        payload = raw[HEADER_SIZE:]
        fields = unpackb(payload)
        if type(fields) is not list or len(fields) != 8:
            raise MalformedMessage("envelope payload must be an array of 8 fields")
        version, net, type_name, sender, context, seq, ts, body = fields
        if net != self.network:
            raise WrongNetwork(f"envelope is for network {net!r}")
        if type(type_name) is not str or type(version) is not int:
            raise MalformedMessage("bad envelope header")
        secret = self.secrets.get(sender) if type(sender) is bytes else None
        if secret is None or _mac(secret, _signed_bytes(net, type_name, payload)) \
                != raw[3:HEADER_SIZE]:
            raise BadSignature("MAC does not verify for its sender")
        msg = REGISTRY.decode(type_name, version, body)
        return Envelope(version, net, type_name, sender, context, seq, ts, msg, payload,
                        raw[3:HEADER_SIZE])

    def verify_vote(self, public_key: bytes, data: bytes, signature: bytes) -> bool:
        secret = self.secrets.get(public_key)
        return secret is not None and _mac(secret, vote_message(data)) == signature

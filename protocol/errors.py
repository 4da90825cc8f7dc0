"""The protocol error tree.

Two roots under ``ProtocolError`` keep blame straight (the h11 convention):

- ``RemoteProtocolError``: a peer sent something we must not accept. The caller drops the
  message, logs it, and counts ``err.reason`` against the peer. Every decoder in ``protocol``
  raises only these for bad input; no other exception type may escape decoding.
- ``LocalProtocolError``: we were asked to do something invalid (encode an oversized body,
  sign with a bad key). That is our bug, not the peer's.

Each remote error carries a short, stable ``reason`` slug for metrics and per-peer fault counts;
the message says what was wrong in words a person can act on.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every error raised by the ``protocol`` package."""

    reason = "protocol"


class LocalProtocolError(ProtocolError):
    """We misused the protocol (a bug on our side), e.g. encoding a body over the size cap."""

    reason = "local"


class RemoteProtocolError(ProtocolError):
    """A peer sent bytes we reject. Drop the message, log it, count ``reason`` against the peer."""

    reason = "remote"


class MalformedMessage(RemoteProtocolError):
    """Bytes that do not decode, or decode to the wrong shape (type, field, range)."""

    reason = "malformed"


class MessageTooLarge(RemoteProtocolError):
    """Input over a size cap, rejected before it is parsed or allocated."""

    reason = "too_large"


class BadSignature(RemoteProtocolError):
    """A signature that does not verify, or that was made for another type or network."""

    reason = "bad_signature"


class ReplayedMessage(RemoteProtocolError):
    """A (sender, context, sequence) seen before, or older than the replay window."""

    reason = "replay"


class StaleMessage(RemoteProtocolError):
    """A timestamp too far from the receiver's clock."""

    reason = "stale"


class UnknownMessageType(RemoteProtocolError):
    """A message type this node does not know."""

    reason = "unknown_type"


class UnsupportedVersion(RemoteProtocolError):
    """A known message type at a version this node does not speak."""

    reason = "unsupported_version"


class WrongNetwork(RemoteProtocolError):
    """A message meant for another NovaCron network (testnet vs mainnet, ...)."""

    reason = "wrong_network"


class DecompressionError(RemoteProtocolError):
    """Compressed data that is corrupt, or that would expand past the cap (a bomb)."""

    reason = "decompression"


class CodecError(RemoteProtocolError):
    """A tensor or blob encoding that is inconsistent (shape, dtype, checksum, scales)."""

    reason = "codec"

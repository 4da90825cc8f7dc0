"""Envelopes: every message between nodes travels in one, signed or (on an authenticated
stream that never relays, format 2) as an unsigned channel frame.

Wire form (all integers big-endian)::

    b"NC"  format(1 byte, = 1)  signature(64 bytes)  payload

    payload = canonical msgpack array
        [version, network, type, sender, context, seq, timestamp_ms, body]

- ``version`` is the message type's schema version, ``type`` its registered name
  (``protocol.schema``); ``body`` is the message as an array of its fields.
- ``sender`` is the 32-byte Ed25519 public key (the node id is derived from it).
- ``context`` names the sequence space: an epoch, or a session id the sender picks at start-up;
  ``seq`` numbers the sender's envelopes within it (the replay window tracks both).
- ``timestamp_ms`` is the sender's clock; the receiver rejects envelopes too far from its own.

The signature covers ``domains.ENVELOPE || network || 0 || type || 0 || payload``. The network
and type are inside the payload too, but putting them in the signed prefix makes the
separation explicit: a signature for one type or network can never verify as another.

**Channel frames** (format 2) are the same payload without the sender and the signature::

    b"NC"  format(1 byte, = 2)  payload
    payload = [version, network, type, context, seq, timestamp_ms, body]

for protocols whose messages only ever cross one authenticated libp2p stream and are never
kept, relayed or shown as proof (soft-state anti-entropy): the Noise session already says
who wrote them, and the 98 bytes of key and signature were a sixth of a capability record's
rewrite and most of an acknowledgement. A channel frame opens only with ``channel_sender``
(the peer the stream belongs to), which becomes its sender; the same size, network, schema,
canonical-form, clock and replay checks apply. It is no evidence: ``to_bytes`` refuses it.

Decoding goes from cheap to expensive (size, magic, msgpack, header, schema, canonical form,
clock skew, replay window, and only then the signature) and raises only ``RemoteProtocolError``
subclasses. A rejected envelope's ``sender`` is unauthenticated: blame the transport peer that
delivered it, not the key it names.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack

from protocol import domains
from protocol.canonical import DEFAULT_MAX_SIZE, packb, unpackb
from protocol.errors import (
    BadSignature,
    LocalProtocolError,
    MalformedMessage,
    MessageTooLarge,
    StaleMessage,
    WrongNetwork,
)
from protocol.identity import NodeId, NodeIdentity, node_id_from_public_key, verify_signature
from protocol.replay import ReplayWindow
from protocol.schema import REGISTRY, MessageRegistry, encode_body, message_type

MAGIC = b"NC"
FORMAT = 1
FORMAT_CHANNEL = 2
HEADER_SIZE = len(MAGIC) + 1 + 64
CHANNEL_HEADER_SIZE = len(MAGIC) + 1
MAX_NETWORK_LEN = 64
MAX_U64 = (1 << 64) - 1
DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded, verified envelope."""

    version: int
    network: str
    type: str
    sender: bytes
    context: int
    seq: int
    timestamp_ms: int
    body: Any
    payload: bytes
    signature: bytes

    @property
    def sender_id(self) -> NodeId:
        return node_id_from_public_key(self.sender)

    def digest(self) -> bytes:
        """SHA-256 of the signed payload: the envelope's identity."""
        return hashlib.sha256(self.payload).digest()

    def to_bytes(self) -> bytes:
        """The exact wire bytes again (for forwarding or as evidence of misbehaviour)."""
        if not self.signature:
            raise LocalProtocolError(f"a {self.type} channel frame is unsigned: it cannot be "
                                     "forwarded or shown as evidence")
        return MAGIC + bytes([FORMAT]) + self.signature + self.payload


def _signed_bytes(network: str, type_name: str, payload: bytes) -> bytes:
    return b"".join((domains.ENVELOPE, network.encode(), b"\x00", type_name.encode(), b"\x00",
                     payload))


def seal(identity: NodeIdentity, network: str, msg: Any, *, context: int, seq: int,
         timestamp_ms: int, max_size: int = DEFAULT_MAX_SIZE, validate: bool = True) -> bytes:
    """Encode and sign ``msg`` (an instance of a registered message class)."""
    type_name, version = message_type(msg)
    _check_header(network, context, seq, timestamp_ms)
    body = encode_body(msg, validate=validate)
    payload = packb([version, network, type_name, identity.public_key, context, seq,
                     timestamp_ms, body], maps=False)
    if HEADER_SIZE + len(payload) > max_size:
        raise _too_large(type_name, HEADER_SIZE + len(payload), max_size)
    signature = identity.sign(_signed_bytes(network, type_name, payload))
    return MAGIC + bytes([FORMAT]) + signature + payload


def _check_header(network: str, context: int, seq: int, timestamp_ms: int) -> None:
    if not network or len(network) > MAX_NETWORK_LEN or "\x00" in network:
        raise LocalProtocolError(f"bad network name {network!r}")
    if not (0 <= context <= MAX_U64 and 0 <= seq <= MAX_U64 and 0 <= timestamp_ms < 1 << 63):
        raise LocalProtocolError("context, seq and timestamp must be unsigned 64-bit integers")


def _too_large(type_name: str, size: int, max_size: int) -> LocalProtocolError:
    return LocalProtocolError(f"{type_name} envelope would be {size} bytes, over the "
                              f"{max_size}-byte cap; send large data as a blob")


def seal_channel(network: str, msg: Any, *, context: int, seq: int, timestamp_ms: int,
                 max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """Encode ``msg`` as an unsigned channel frame (module docstring: only for a stream the
    transport authenticates, and never for what is kept or relayed)."""
    type_name, version = message_type(msg)
    _check_header(network, context, seq, timestamp_ms)
    payload = packb([version, network, type_name, context, seq, timestamp_ms,
                     encode_body(msg)], maps=False)
    if CHANNEL_HEADER_SIZE + len(payload) > max_size:
        raise _too_large(type_name, CHANNEL_HEADER_SIZE + len(payload), max_size)
    return MAGIC + bytes([FORMAT_CHANNEL]) + payload


def peek_type(data: bytes) -> str:
    """The type name an envelope says it carries, read without checking anything (for counting
    what we send or receive by kind); ``"?"`` if the bytes are no envelope."""
    if len(data) < 3 or data[:2] != MAGIC:
        return "?"
    start = CHANNEL_HEADER_SIZE if data[2] == FORMAT_CHANNEL else HEADER_SIZE
    if len(data) <= start:
        return "?"
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=256)
    unpacker.feed(data[start:start + 128])
    try:
        if unpacker.read_array_header() < 3:
            return "?"
        unpacker.skip()
        unpacker.skip()
        name = unpacker.unpack()
    except Exception:  # truncated or not msgpack: no envelope
        return "?"
    return name if isinstance(name, str) else "?"


def _header_int(v: Any, name: str, hi: int = MAX_U64) -> int:
    if type(v) is not int or not 0 <= v <= hi:
        raise MalformedMessage(f"envelope {name} must be an integer in [0, {hi}]")
    return v


def open_envelope(
    data: bytes,
    *,
    network: str,
    registry: MessageRegistry = REGISTRY,
    max_size: int = DEFAULT_MAX_SIZE,
    now_ms: int | None = None,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
    replay: ReplayWindow | None = None,
    channel_sender: bytes | None = None,
    channel_frames: bool = False,
) -> Envelope:
    """Decode and verify untrusted bytes. Raises only ``RemoteProtocolError`` subclasses.

    ``now_ms`` enables the clock-skew check; ``replay`` enables (and updates) the replay window.
    Without them this is a pure verification, e.g. of evidence kept in a certificate.

    ``channel_sender``: the public key the transport itself authenticated for these bytes (a
    libp2p Noise session with the peer whose id is that key: only its holder can have written
    them). An envelope naming that sender is taken without checking its signature, which
    would prove again what the channel proved (about 75 us of this function's 83). Only for
    messages whose bytes are never shown to a third party as proof of what the sender said:
    the signature then goes unchecked, and may be anything the sender chose to put there.
    ``channel_frames``: also take unsigned channel frames (format 2) from ``channel_sender``;
    only a protocol that never keeps or relays what it receives may ask for them.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedMessage("envelope must be bytes")
    data = bytes(data)
    if len(data) > max_size:
        raise MessageTooLarge(f"envelope is {len(data)} bytes, the limit is {max_size}")
    if len(data) <= CHANNEL_HEADER_SIZE or data[:2] != MAGIC:
        raise MalformedMessage("not a NovaCron envelope (bad magic or too short)")
    if data[2] == FORMAT_CHANNEL:
        if not channel_frames or channel_sender is None:
            raise MalformedMessage("an unsigned channel frame is taken only on a protocol that "
                                   "asks for them, from the stream of the peer that wrote it")
        signature, payload = b"", data[CHANNEL_HEADER_SIZE:]
        fields = unpackb(payload, max_size=max_size, canonical_maps=True)
        if type(fields) is not list or len(fields) != 7:
            raise MalformedMessage("channel frame payload must be an array of 7 fields")
        fields = fields[:3] + [channel_sender] + fields[3:]
    elif data[2] == FORMAT:
        if len(data) <= HEADER_SIZE:
            raise MalformedMessage("not a NovaCron envelope (too short)")
        signature, payload = data[3:HEADER_SIZE], data[HEADER_SIZE:]
        fields = unpackb(payload, max_size=max_size, canonical_maps=True)
        if type(fields) is not list or len(fields) != 8:
            raise MalformedMessage("envelope payload must be an array of 8 fields")
    else:
        raise MalformedMessage(f"envelope format {data[2]} is not supported (this node "
                               f"speaks {FORMAT} and {FORMAT_CHANNEL})")
    version, net, type_name, sender, context, seq, timestamp_ms, body = fields
    _header_int(version, "version", 0xFFFF)
    if type(net) is not str or not net or len(net) > MAX_NETWORK_LEN:
        raise MalformedMessage("envelope network must be a short string")
    if net != network:
        raise WrongNetwork(f"envelope is for network {net!r}, this node is on {network!r}")
    if type(type_name) is not str:
        raise MalformedMessage("envelope type must be a string")
    if type(sender) is not bytes or len(sender) != 32:
        raise MalformedMessage("envelope sender must be a 32-byte Ed25519 public key")
    _header_int(context, "context")
    _header_int(seq, "seq")
    _header_int(timestamp_ms, "timestamp", (1 << 63) - 1)
    msg = registry.decode(type_name, version, body)
    written = fields if signature else fields[:3] + fields[4:]
    if packb(written, maps=False) != payload:  # maps were checked sorted while unpacking
        raise MalformedMessage("envelope payload is not in canonical form")
    if now_ms is not None and abs(now_ms - timestamp_ms) > max_skew_ms:
        raise StaleMessage(
            f"envelope timestamp is {(timestamp_ms - now_ms) / 1000:+.1f} s from this node's "
            f"clock (limit {max_skew_ms / 1000:.0f} s)"
        )
    if replay is not None:
        replay.check(sender, context, seq)
    if signature and sender != channel_sender and \
            not verify_signature(sender, _signed_bytes(net, type_name, payload), signature):
        raise BadSignature(f"{type_name} envelope signature does not verify for its sender")
    if replay is not None:
        replay.record(sender, context, seq)
    return Envelope(version, net, type_name, sender, context, seq, timestamp_ms, msg, payload,
                    signature)


class EnvelopeSealer:
    """Seals one node's outgoing envelopes, numbering them within a context.

    The daemon picks a fresh ``context`` at each start (e.g. a random 64-bit session id), so
    sequence numbers need not survive restarts.
    """

    __slots__ = ("identity", "network", "context", "seq", "max_size")

    def __init__(self, identity: NodeIdentity, network: str, context: int,
                 max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.identity = identity
        self.network = network
        self.context = context
        self.seq = 0
        self.max_size = max_size

    def seal(self, msg: Any, timestamp_ms: int) -> bytes:
        self.seq += 1
        return seal(self.identity, self.network, msg, context=self.context, seq=self.seq,
                    timestamp_ms=timestamp_ms, max_size=self.max_size)

    def seal_channel(self, msg: Any, timestamp_ms: int) -> bytes:
        """``msg`` as an unsigned channel frame (``seal_channel``), numbered alike."""
        self.seq += 1
        return seal_channel(self.network, msg, context=self.context, seq=self.seq,
                            timestamp_ms=timestamp_ms, max_size=self.max_size)


class EnvelopeOpener:
    """Opens envelopes arriving at one node, with its network, size cap and replay window."""

    __slots__ = ("network", "registry", "max_size", "max_skew_ms", "replay")

    def __init__(self, network: str, *, registry: MessageRegistry = REGISTRY,
                 max_size: int = DEFAULT_MAX_SIZE, max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
                 replay: ReplayWindow | None = None) -> None:
        self.network = network
        self.registry = registry
        self.max_size = max_size
        self.max_skew_ms = max_skew_ms
        self.replay = replay if replay is not None else ReplayWindow()

    def open(self, data: bytes, now_ms: int | None = None,
             channel_sender: bytes | None = None, channel_frames: bool = False) -> Envelope:
        """``channel_sender``, ``channel_frames``: see ``open_envelope``."""
        return open_envelope(data, network=self.network, registry=self.registry,
                             max_size=self.max_size, now_ms=now_ms,
                             max_skew_ms=self.max_skew_ms, replay=self.replay,
                             channel_sender=channel_sender, channel_frames=channel_frames)

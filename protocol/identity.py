"""Node identity: one Ed25519 key is both the libp2p transport identity and the signing identity.

The node id is the libp2p peer id of the public key: the identity multihash (code 0x00) of the
protobuf-encoded libp2p ``PublicKey{Type: Ed25519, Data: <32 bytes>}``, in base58btc, which is
why every Ed25519 peer id starts with ``12D3KooW``. We compute it here without importing libp2p
(this package is pure); ``tests/protocol/test_identity.py`` checks it equals py-libp2p's id.

Key files hold the 32-byte seed, base64-encoded, under a versioned header line. Writing and
reading the file (with mode 0600) is I/O and lives in ``daemon.storage.keyfile``; the format
lives here so that both sides of it are in one place.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from typing import NewType

import nacl.bindings
import nacl.exceptions
import nacl.signing

from protocol.base58 import b58decode, b58encode
from protocol.errors import LocalProtocolError, MalformedMessage

NodeId = NewType("NodeId", str)
"""A node's libp2p peer id in base58btc, e.g. ``12D3KooW...``."""

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32

# Identity multihash (0x00, length 36) of protobuf PublicKey{Type=1 (Ed25519), Data=32 bytes}.
_PEER_ID_PREFIX = b"\x00\x24" + b"\x08\x01\x12\x20"

KEY_FILE_HEADER = "novacron-ed25519-seed-v1"


SHORT_ID_CHARS = 12


def short_node_id(node_id: str) -> str:
    """A node id as people read it: its last 12 characters, the same length everywhere.

    Every Ed25519 node id starts ``12D3KooW``; the tail is what tells two apart."""
    return node_id[-SHORT_ID_CHARS:]


def node_id_from_public_key(public_key: bytes) -> NodeId:
    """The libp2p peer id for an Ed25519 public key. Cached: a consensus member names each
    recipient of every vote by it (18 per vote in a 19-member committee), and base58 in
    Python cost about 2% of a member's CPU per commit."""
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise LocalProtocolError(f"Ed25519 public key must be 32 bytes, got {len(public_key)}")
    return _node_id_of(bytes(public_key))


@functools.lru_cache(maxsize=4096)
def _node_id_of(public_key: bytes) -> NodeId:
    return NodeId(b58encode(_PEER_ID_PREFIX + public_key))


@functools.lru_cache(maxsize=4096)
def public_key_from_node_id(node_id: str) -> bytes:
    """Recover the Ed25519 public key embedded in a peer id (identity multihash). Cached: it
    is asked for every frame a peer sends on some paths, and the answer never changes."""
    raw = b58decode(node_id, max_len=64)
    if len(raw) != len(_PEER_ID_PREFIX) + PUBLIC_KEY_SIZE or not raw.startswith(_PEER_ID_PREFIX):
        raise MalformedMessage(f"not an Ed25519 peer id: {node_id[:60]!r}")
    return raw[len(_PEER_ID_PREFIX):]


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """Someone else's identity: a public key we can verify signatures with."""

    public_key: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.public_key, bytes) or len(self.public_key) != PUBLIC_KEY_SIZE:
            raise MalformedMessage("an Ed25519 public key must be 32 bytes")

    @property
    def node_id(self) -> NodeId:
        return node_id_from_public_key(self.public_key)

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True iff ``signature`` is this key's Ed25519 signature of ``data``. Never raises."""
        return verify_signature(self.public_key, data, signature)


def verify_signature(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """Ed25519 verification that returns False for every kind of bad input instead of raising."""
    if len(signature) != SIGNATURE_SIZE or len(public_key) != PUBLIC_KEY_SIZE:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + data, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError,
            nacl.exceptions.TypeError, ValueError, TypeError):
        return False
    return True


class NodeIdentity:
    """This node's key pair. Holds the secret; signs; knows its node id."""

    __slots__ = ("_signing_key", "public_key", "node_id", "_secret")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
            raise LocalProtocolError("an Ed25519 seed must be 32 bytes")
        self._signing_key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._signing_key.verify_key)
        self.node_id: NodeId = node_id_from_public_key(self.public_key)
        # nacl's 64-byte secret key (seed || public key), for the fast detached-sign binding.
        self._secret = seed + self.public_key

    @classmethod
    def generate(cls, entropy: bytes) -> "NodeIdentity":
        """A new identity from 32 bytes of entropy the caller got from the OS (or a seeded RNG)."""
        return cls(entropy)

    @property
    def seed(self) -> bytes:
        return self._secret[:SEED_SIZE]

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.public_key)

    def sign(self, data: bytes) -> bytes:
        """Detached 64-byte Ed25519 signature of ``data``."""
        return nacl.bindings.crypto_sign(data, self._secret)[:SIGNATURE_SIZE]

    def __repr__(self) -> str:  # never print the secret
        return f"NodeIdentity({self.node_id})"

    # -- key file format (the I/O is in daemon.storage.keyfile) -------------------------------

    def to_key_file(self) -> bytes:
        b64 = base64.b64encode(self.seed).decode("ascii")
        return (
            f"# NovaCron node key for {self.node_id}. Secret: anyone holding it is this node.\n"
            f"{KEY_FILE_HEADER} {b64}\n"
        ).encode("ascii")

    @classmethod
    def from_key_file(cls, data: bytes) -> "NodeIdentity":
        """Parse a key file; raises ``LocalProtocolError`` with a clear message when damaged."""
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise LocalProtocolError("key file is not ASCII text; it is damaged") from None
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[0] != KEY_FILE_HEADER:
                raise LocalProtocolError(
                    f"key file line does not start with {KEY_FILE_HEADER!r}; it is damaged or "
                    "not a NovaCron key"
                )
            try:
                seed = base64.b64decode(parts[1], validate=True)
            except (binascii.Error, ValueError):
                raise LocalProtocolError("key file seed is not valid base64; it is damaged") from None
            if len(seed) != SEED_SIZE:
                raise LocalProtocolError(f"key file seed is {len(seed)} bytes, expected 32")
            return cls(seed)
        raise LocalProtocolError("key file holds no key")

"""NovaCron wire protocol: pure, no I/O, no clock reads, no global randomness.

Modules:

- ``errors``      -- the error tree: ``ProtocolError`` > ``RemoteProtocolError`` (peer sent
                     garbage: drop, penalise, log; each has a ``reason`` slug) and
                     ``LocalProtocolError`` (our own bug).
- ``identity``    -- Ed25519 node identity; node id = libp2p peer id of the same key.
- ``base58``      -- base58btc for peer ids.
- ``canonical``   -- canonical msgpack encoding and strict, bounded decoding.
- ``schema``      -- typed, versioned message classes (``@message``) and their array wire form.
- ``types``       -- named field types (``U64``, ``Digest``, ``Signature``, ...).
- ``messages``    -- the message classes of every protocol (capability, crdt, pbft, tasks, blobs,
                     ledger operations).
- ``attestation`` -- the ordered attestation levels (on the wire in records, specs, placements).
- ``domains``     -- signing-domain tags, one per use of the node key.
- ``envelope``    -- signed envelopes: ``seal`` / ``open_envelope``, ``EnvelopeSealer`` /
                     ``EnvelopeOpener``; unsigned channel frames (``seal_channel``).
- ``replay``      -- the per-sender sliding replay window.
- ``compression`` -- zstd with a hard cap on decompressed size; sent raw when zstd does not pay.
- ``sticky``      -- sticky files: a task input naming state an earlier task left on the
                     volunteers that ran it, and the frame a task leaves such state in.
- ``tensor``      -- numpy arrays on the wire (lossless, float16, blockwise int8/int4/sign1,
                     top-k), error feedback, and the codec choice for a link.
"""

from protocol import messages
from protocol.compression import compress, decompress
from protocol.envelope import Envelope, EnvelopeOpener, EnvelopeSealer, open_envelope, seal
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from protocol.identity import NodeId, NodeIdentity, PublicIdentity, node_id_from_public_key
from protocol.replay import ReplayWindow
from protocol.schema import REGISTRY, message

__all__ = [
    "REGISTRY", "compress", "decompress", "Envelope", "EnvelopeOpener", "EnvelopeSealer", "LocalProtocolError", "NodeId",
    "NodeIdentity", "ProtocolError", "PublicIdentity", "RemoteProtocolError", "ReplayWindow",
    "message", "messages", "node_id_from_public_key", "open_envelope", "seal",
]

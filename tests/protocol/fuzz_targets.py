"""Every decoder of untrusted bytes in ``protocol``, and seeds to mutate, for fuzzing.

Shared by ``tests/protocol/test_fuzz.py`` (a few hundred examples in the normal suite) and
``scripts/fuzz_protocol.py`` (10,000+ examples). The property: any input either decodes or
raises a ``RemoteProtocolError`` subclass; nothing else escapes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import protocol.messages  # noqa: F401
from protocol.base58 import b58decode
from protocol.canonical import unpackb
from protocol.envelope import open_envelope, seal, seal_channel
from protocol.identity import NodeIdentity, public_key_from_node_id
from protocol.messages.blobs import BlobChunk
from protocol.messages.capability import CapabilityAnnounce
from protocol.messages.pbft import PrePrepare
from protocol.replay import ReplayWindow
from protocol.schema import REGISTRY

NET = "novacron-fuzz"
_ID = NodeIdentity(random.Random(0).randbytes(32))


def _schema_decode(data: bytes) -> Any:
    """msgpack -> [type, version, body] -> registry decode: the schema layer on its own."""
    value = unpackb(data)
    if type(value) is list and len(value) == 3 and type(value[0]) is str and type(value[1]) is int:
        return REGISTRY.decode(value[0], value[1], value[2])
    return value


def _envelope_with_replay(data: bytes) -> Any:
    return open_envelope(data, network=NET, replay=ReplayWindow(window=8), now_ms=1_000)


TARGETS: dict[str, Callable[[bytes], Any]] = {
    "canonical.unpackb": unpackb,
    "schema.decode": _schema_decode,
    "envelope.open": lambda d: open_envelope(d, network=NET),
    "envelope.open+replay+clock": _envelope_with_replay,
    "envelope.open_channel": lambda d: open_envelope(d, network=NET,
                                                     channel_sender=_ID.public_key,
                                                     channel_frames=True),
    "base58.decode": lambda d: b58decode(d.decode("latin-1")),
    "identity.node_id": lambda d: public_key_from_node_id(d.decode("latin-1")),
}

# Extra targets registered by other modules of the protocol package (tensor codec, compression).
try:  # pragma: no cover - present once the tensor codec is merged
    from tests.protocol.fuzz_targets_codec import CODEC_SEEDS, CODEC_TARGETS

    TARGETS.update(CODEC_TARGETS)
except ImportError:  # pragma: no cover
    CODEC_SEEDS: dict[str, list[bytes]] = {}


def _seed_envelopes() -> list[bytes]:
    msgs = [
        PrePrepare(1, 2, 3, 4, b"\x01" * 32, (b"req-a", b"req-b"), b"\x03" * 64),
        BlobChunk(b"\x02" * 32, 0, 3, b"abc"),
        CapabilityAnnounce(_ID.node_id, "0.1.0", 8, 16384, ("wasm32-wasi",), ("/ip4/127.0.0.1/tcp/1",),
                           {"kind": "none", "reasons": ["no tpm"]}, {"up": [1, 2]}, 2, 10, "d1", 5, 1),
    ]
    signed = [seal(_ID, NET, m, context=1, seq=i + 1, timestamp_ms=1_000)
              for i, m in enumerate(msgs)]
    return signed + [seal_channel(NET, m, context=1, seq=i + 9, timestamp_ms=1_000)
                     for i, m in enumerate(msgs)]


def seeds_for(target: str) -> list[bytes]:
    """Valid inputs for a target, which the fuzzer mutates (bit flips, truncation, splices)."""
    if target.startswith("envelope"):
        return _seed_envelopes()
    if target in ("canonical.unpackb", "schema.decode"):
        from protocol.canonical import packb
        from protocol.schema import encode_body

        return [packb([m.TYPE, m.VERSION, encode_body(m)]) for m in (
            PrePrepare(1, 2, 3, 4, b"\x01" * 32, (b"x",), b"\x03" * 64), BlobChunk(b"\x02" * 32, 0, 3, b"abc"))]
    if target.startswith(("base58", "identity")):
        return [_ID.node_id.encode()]
    return CODEC_SEEDS.get(target, [b""])


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One random structural mutation: flip bits, overwrite, truncate, extend, splice, dup."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            i = rng.randrange(len(buf))
            buf[i] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0xC1, 0xDD, 0xDF, 0xCF, rng.randrange(256)])
        elif op == 2 and buf:
            del buf[rng.randrange(len(buf)):]
        elif op == 3:
            buf += rng.randbytes(rng.randint(1, 16))
        elif op == 4 and len(buf) > 2:
            i, j = sorted(rng.sample(range(len(buf)), 2))
            buf[i:j] = rng.randbytes(j - i)
        elif op == 5 and buf:
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i:i + rng.randint(1, 32)]
    return bytes(buf)

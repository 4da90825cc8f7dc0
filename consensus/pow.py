"""Proof of work on a node key: the price of an identity.

A join request carries a nonce such that BLAKE2b-256(tag, network, public key, nonce) starts
with ``difficulty`` zero bits. Expected work is 2**difficulty hashes per key (about 1 s of one
core at difficulty 20 in Python; the testnet uses ~8). The work is bound to the key and the
network, so it cannot be reused for another key or carried from the testnet to the main network.
Verification is one hash.
"""

from __future__ import annotations

import hashlib
import struct

from protocol.errors import LocalProtocolError

_TAG = b"novacron/join-pow/v1\x00"
MAX_DIFFICULTY = 64


def pow_digest(network: str, public_key: bytes, nonce: int) -> bytes:
    return hashlib.blake2b(_TAG + network.encode() + b"\x00" + public_key +
                           struct.pack(">Q", nonce), digest_size=32).digest()


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def check_pow(network: str, public_key: bytes, nonce: int, difficulty: int) -> bool:
    if not 0 <= nonce < 1 << 64 or len(public_key) != 32:
        return False
    return leading_zero_bits(pow_digest(network, public_key, nonce)) >= difficulty


def solve_pow(network: str, public_key: bytes, difficulty: int, start: int = 0,
              max_tries: int | None = None) -> int:
    """Find a nonce (pure: no clock, no randomness; ``start`` lets callers spread work)."""
    if not 0 <= difficulty <= MAX_DIFFICULTY:
        raise LocalProtocolError(f"difficulty must be in [0, {MAX_DIFFICULTY}]")
    prefix = _TAG + network.encode() + b"\x00" + public_key
    target = 1 << (256 - difficulty)
    nonce = start
    end = None if max_tries is None else start + max_tries
    while end is None or nonce < end:
        h = hashlib.blake2b(prefix + struct.pack(">Q", nonce), digest_size=32).digest()
        if int.from_bytes(h, "big") < target:
            return nonce
        nonce += 1
    raise LocalProtocolError(f"no proof of work found in {max_tries} tries")

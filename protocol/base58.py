"""Base58btc (the Bitcoin alphabet), as libp2p uses for peer ids. Small and dependency-free."""

from __future__ import annotations

from protocol.errors import MalformedMessage

ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(ALPHABET[rem])
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str, max_len: int = 128) -> bytes:
    """Decode base58btc; raises ``MalformedMessage`` on bad characters or overlong input."""
    if not isinstance(text, str) or len(text) > max_len * 2:
        raise MalformedMessage("base58 text is not a string or is too long")
    n = 0
    for ch in text:
        try:
            n = n * 58 + _INDEX[ch]
        except KeyError:
            raise MalformedMessage(f"invalid base58 character {ch!r}") from None
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body

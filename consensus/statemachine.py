"""The replicated state machine interface, the service wrapper around it, and a small
key-value machine for tests.

``StateMachine`` is what the job ledger implements: deterministic ``apply``, and a snapshot
that is the whole state as bytes. ``Service`` wraps it with what PBFT itself must replicate:
the per-client table of the last executed request id and its result (de-duplication and
reply re-sends survive view changes, state transfer and epoch handover because the table is
part of the snapshot), and the end-of-epoch flag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from protocol.canonical import packb, unpackb
from protocol.envelope import Envelope
from protocol.errors import LocalProtocolError, MalformedMessage
from protocol.messages.pbft import EndEpoch, Request


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """One request of a batch, decoded from its signed envelope (``raw``)."""

    client: bytes
    """The client's public key (the envelope's signer)."""
    request_id: int
    operation: bytes
    raw: bytes
    end_epoch: bool = False

    @property
    def key(self) -> tuple[bytes, int]:
        return (self.client, self.request_id)

    @staticmethod
    def from_envelope(env: Envelope, raw: bytes) -> "ClientRequest":
        body = env.body
        if isinstance(body, Request):
            return ClientRequest(env.sender, body.request_id, body.operation, raw)
        if isinstance(body, EndEpoch):
            return ClientRequest(env.sender, 0, b"", raw, end_epoch=True)
        raise MalformedMessage(f"{env.type} is not a request")


class StateMachine(Protocol):
    """Deterministic: the same requests in the same order give the same results and snapshot."""

    def apply(self, request: ClientRequest) -> bytes:
        """Execute one request; return the reply bytes (<= 64 KiB)."""
        ...

    def snapshot(self) -> bytes:
        """The whole state, canonically encoded (equal states give equal bytes)."""
        ...

    def restore(self, snapshot: bytes) -> None:
        """Replace the state with a snapshot (raise ``MalformedMessage`` if it is garbage)."""
        ...


MAX_RESULT = 64 * 1024
"""A reply's result travels in one ``Reply`` message (``SmallBlob``)."""


def state_digest(snapshot: bytes) -> bytes:
    return hashlib.sha256(snapshot).digest()


class Service:
    """The state PBFT replicates: the application machine, the client table, the epoch flag."""

    __slots__ = ("machine", "clients", "ended")

    def __init__(self, machine: StateMachine) -> None:
        self.machine = machine
        self.clients: dict[bytes, tuple[int, bytes]] = {}
        self.ended = False

    def last_reply(self, client: bytes) -> tuple[int, bytes] | None:
        return self.clients.get(client)

    def is_done(self, request: ClientRequest) -> bool:
        last = self.clients.get(request.client)
        return last is not None and request.request_id <= last[0]

    def execute(self, request: ClientRequest) -> bytes | None:
        """Run one request unless it is a duplicate (or the epoch has ended): None then."""
        if self.ended:
            return None
        if request.end_epoch:
            self.ended = True
            return b""
        if self.is_done(request):
            return None
        result = self.machine.apply(request)
        if len(result) > MAX_RESULT:
            raise LocalProtocolError(f"state machine returned a {len(result)}-byte result; the "
                                     f"limit is {MAX_RESULT} (send large results as blobs)")
        self.clients[request.client] = (request.request_id, result)
        return result

    def snapshot(self) -> bytes:
        table = [[c, rid, res] for c, (rid, res) in sorted(self.clients.items())]
        return packb([self.machine.snapshot(), table, self.ended], maps=False)

    def restore(self, snapshot: bytes) -> None:
        value = unpackb(snapshot, max_size=1 << 40, max_items=1 << 24)
        try:
            app, table, ended = value
            clients = {bytes(c): (int(rid), bytes(res)) for c, rid, res in table}
        except (TypeError, ValueError):
            raise MalformedMessage("state snapshot has the wrong shape") from None
        self.machine.restore(app)
        self.clients = clients
        self.ended = bool(ended)


class KeyValueMachine:
    """Tests' state machine. Operations are msgpack arrays:
    ``["put", key, value]`` -> b"ok"; ``["get", key]`` -> the value or b"";
    ``["add", key, n]`` -> the new integer, as decimal bytes; anything else -> b"error"."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def apply(self, request: ClientRequest) -> bytes:
        try:
            op = unpackb(request.operation)
            if op[0] == "put" and len(op) == 3 and isinstance(op[1], str):
                self.data[op[1]] = op[2]
                return b"ok"
            if op[0] == "get" and len(op) == 2:
                v = self.data.get(op[1], b"")
                return v if isinstance(v, bytes) else str(v).encode()
            if op[0] == "add" and len(op) == 3 and isinstance(op[1], str) and type(op[2]) is int:
                cur = self.data.get(op[1], 0)
                new = (cur if type(cur) is int else 0) + op[2]
                self.data[op[1]] = new
                return str(new).encode()
        except (MalformedMessage, IndexError, TypeError, KeyError):
            pass
        return b"error"

    def snapshot(self) -> bytes:
        return packb(self.data)

    def restore(self, snapshot: bytes) -> None:
        value = unpackb(snapshot, max_size=1 << 40, max_items=1 << 24)
        if not isinstance(value, dict):
            raise MalformedMessage("key-value snapshot must be a map")
        self.data = value


def kv_op(*parts: Any) -> bytes:
    """Encode a ``KeyValueMachine`` operation."""
    return packb(list(parts))

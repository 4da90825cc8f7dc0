"""A shard committee's replicated state machine: the job ledger, beside a small key-value store.

Operations are tagged by their first byte: ``J`` + a ledger operation (``daemon.jobs.ops``),
``K`` + a key-value operation (``consensus.KeyValueMachine``: operators' notes, and the
simplest request to watch a committee commit). The snapshot is both states together.
"""

from __future__ import annotations

from consensus.statemachine import ClientRequest, KeyValueMachine
from daemon.jobs.ledger import JobLedger
from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage

LEDGER = b"J"
KV = b"K"
MAX_KV_KEYS = 10_000


class ShardMachine:
    def __init__(self, members: list[bytes], f: int) -> None:
        self.ledger = JobLedger(members, f)
        self.kv = KeyValueMachine()

    def apply(self, request: ClientRequest) -> bytes:
        tag, body = request.operation[:1], request.operation[1:]
        sub = ClientRequest(request.client, request.request_id, body, request.raw)
        if tag == LEDGER:
            return self.ledger.apply(sub)
        if tag == KV:
            if len(self.kv.data) >= MAX_KV_KEYS:
                return b"error: the key-value store is full"
            return self.kv.apply(sub)
        return b"error: unknown operation family"

    def snapshot(self) -> bytes:
        return packb([self.ledger.snapshot(), self.kv.snapshot()])

    def restore(self, snapshot: bytes) -> None:
        v = unpackb(snapshot, max_size=1 << 30)
        if not isinstance(v, list) or len(v) != 2 or not all(isinstance(x, bytes) for x in v):
            raise MalformedMessage("shard snapshot has the wrong shape")
        self.ledger.restore(v[0])
        self.kv.restore(v[1])

"""Submitting requests to a shard committee from this node, one at a time per shard.

A ``consensus.Client`` has one outstanding request (a replica de-duplicates by (client, request
id), and an id below the last executed one is a duplicate). So each shard gets a queue and a
client; callers await their result. Request ids start at the current time in microseconds,
so a restarted node never reuses an id its committee has already executed.

Interactive requests (``urgent``: a user's ``kv put``, waiting at a prompt) go ahead of the
bulk queue, so a node streaming a 100,000-task job's inputs and results still answers its
user within one committee round, not after thousands of queued reports. Combined ledger
requests stay under ``MAX_BATCH_BYTES``, well inside one request's 64 KiB operation.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from consensus.client import Client
from consensus.committee import shard_words
from consensus.config import ReplicaConfig
from consensus.crypto import Signer
from consensus.sizes import MAX_OPERATION
from daemon.errors import DaemonError

MAX_QUEUE = 4096
MAX_BATCH_BYTES = 48 * 1024
"""A combined request stays well under a request's 64 KiB operation limit."""


class CommitteeUnavailable(DaemonError):
    """No result within the timeout (no quorum reachable?); the request may still commit."""


class QueueFull(DaemonError):
    pass


@dataclass
class _Pending:
    operation: bytes
    done: trio.Event = field(default_factory=trio.Event)
    result: bytes | None = None
    submitted: float = 0.0
    finished: float = 0.0


Batcher = Callable[[list[bytes]], tuple[bytes, Callable[[bytes], list[bytes]]] | None]
"""Given several queued operations, one operation that does them all and a function that
splits its result into theirs; or None when they cannot be combined."""


class ShardRequests:
    """The queue and client of one shard."""

    def __init__(self, config: ReplicaConfig, signer: Signer, batcher: Batcher | None = None,
                 max_batch: int = 32, first_request_id: int | None = None,
                 pack: Callable[[bytes], bytes] | None = None) -> None:
        """``first_request_id``: default the current time in microseconds (the simulator
        passes its virtual time, so runs replay). ``pack``: the application's last step
        before an operation goes into a request (``ShardApplication.pack``)."""
        first = first_request_id if first_request_id is not None else time.time_ns() // 1000
        self.client = Client(config, signer, retry=0.5, first_request_id=first)
        self.queue: deque[_Pending] = deque()
        self.urgent: deque[_Pending] = deque()
        self.current: list[_Pending] = []
        self._split: Callable[[bytes], list[bytes]] | None = None
        self.batcher = batcher
        self.pack = pack
        self.max_batch = max_batch
        self.batches = 0
        self.completed = 0
        self.latencies: deque[float] = deque(maxlen=1000)

    @property
    def config(self) -> ReplicaConfig:
        return self.client.cfg

    def resting(self) -> bool:
        """Nothing queued, nothing in flight, no result to collect: the client's tick (its
        retries) has nothing to do until a request comes."""
        return not (self.current or self.queue or self.urgent or self.client.busy or
                    self.client.done)

    def enqueue(self, operation: bytes, urgent: bool = False) -> _Pending:
        if len(operation) > MAX_OPERATION:  # our bug: fail here, not inside the pump loop
            raise ValueError(f"a {len(operation)}-byte operation is over the {MAX_OPERATION}-byte "
                             "request limit")
        queue = self.urgent if urgent else self.queue
        if len(queue) >= MAX_QUEUE:
            raise QueueFull(f"{len(queue)} requests already wait for "
                            f"{shard_words(self.config.shard)}")
        p = _Pending(operation)
        queue.append(p)
        return p

    def pump(self, now: float) -> list[Any]:
        """Collect finished requests, start the next one; returns the client's actions."""
        actions: list[Any] = []
        while self.client.done:
            d = self.client.done.pop(0)
            if self.current:
                results = self._split(d.result) if self._split else [d.result]
                if len(results) != len(self.current):  # a garbled batch reply: fail them all
                    results = [b""] * len(self.current)
                for p, result in zip(self.current, results):
                    p.result = result
                    p.finished = now
                    self.latencies.append(now - p.submitted)
                    p.done.set()
                    self.completed += 1
                self.current, self._split = [], None
        if not self.current and self.urgent and not self.client.busy:
            take = [self.urgent.popleft()]
            operation = take[0].operation
            self.current = take
            take[0].submitted = now
            actions += self._submit(operation, now)
        elif not self.current and self.queue and not self.client.busy:
            take = [self.queue.popleft()]
            operation = take[0].operation
            if self.batcher is not None and self.queue:
                more = [take[0]]
                size = len(take[0].operation)
                while self.queue and len(more) < self.max_batch and \
                        size + len(self.queue[0].operation) <= MAX_BATCH_BYTES:
                    size += len(self.queue[0].operation)
                    more.append(self.queue.popleft())
                combined = self.batcher([p.operation for p in more])
                if combined is not None:
                    take, (operation, self._split) = more, combined
                    self.batches += 1
                else:
                    for p in reversed(more[1:]):
                        self.queue.appendleft(p)
            self.current = take
            for p in take:
                p.submitted = now
            actions += self._submit(operation, now)
        return actions

    def _submit(self, operation: bytes, now: float) -> list[Any]:
        return self.client.submit(self.pack(operation) if self.pack else operation, now)

    def recent_latency(self, last: int = 32) -> float:
        """The median time, in seconds, of the last ``last`` requests from submitting to the
        result (this node's queue included); 0 before any."""
        lat = sorted(list(self.latencies)[-last:])
        return lat[len(lat) // 2] if lat else 0.0

    def status(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1000 if lat else None
        return {"queued": len(self.urgent) + len(self.queue) + len(self.current), "completed": self.completed,
                "batches": self.batches, "latency_p50_ms": round(p50, 2) if p50 is not None else None,
                "resend_after_ms": round(self.client.retry * 1000)}

"""Submitting requests to a shard committee from this node, one at a time per shard.

A ``consensus.Client`` has one outstanding request (a replica de-duplicates by (client, request
id), and an id below the last executed one is a duplicate). So each shard gets a queue and a
client; callers await their result. Request ids start at the current time in microseconds,
so a restarted node never reuses an id its committee has already executed.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import trio

from consensus.client import Client
from consensus.config import ReplicaConfig
from consensus.crypto import Signer

MAX_QUEUE = 4096


class CommitteeUnavailable(Exception):
    """No result within the timeout (no quorum reachable?); the request may still commit."""


class QueueFull(Exception):
    pass


@dataclass
class _Pending:
    operation: bytes
    done: trio.Event = field(default_factory=trio.Event)
    result: bytes | None = None
    submitted: float = 0.0
    finished: float = 0.0


class ShardRequests:
    """The queue and client of one shard."""

    def __init__(self, config: ReplicaConfig, signer: Signer) -> None:
        self.client = Client(config, signer, retry=0.5, first_request_id=time.time_ns() // 1000)
        self.queue: deque[_Pending] = deque()
        self.current: _Pending | None = None
        self.completed = 0
        self.latencies: deque[float] = deque(maxlen=1000)

    @property
    def config(self) -> ReplicaConfig:
        return self.client.cfg

    def enqueue(self, operation: bytes) -> _Pending:
        if len(self.queue) >= MAX_QUEUE:
            raise QueueFull(f"{len(self.queue)} requests already wait for shard {self.config.shard}")
        p = _Pending(operation)
        self.queue.append(p)
        return p

    def pump(self, now: float) -> list[Any]:
        """Collect finished requests, start the next one; returns the client's actions."""
        actions: list[Any] = []
        while self.client.done:
            d = self.client.done.pop(0)
            if self.current is not None:
                self.current.result = d.result
                self.current.finished = now
                self.latencies.append(now - self.current.submitted)
                self.current.done.set()
                self.current = None
                self.completed += 1
        if self.current is None and self.queue and not self.client.busy:
            self.current = self.queue.popleft()
            self.current.submitted = now
            actions += self.client.submit(self.current.operation, now)
        return actions

    def status(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] * 1000 if lat else None
        return {"queued": len(self.queue) + (1 if self.current else 0), "completed": self.completed,
                "latency_p50_ms": round(p50, 2) if p50 is not None else None}

"""What the committees service needs of the application its shard committees replicate.

The service orders requests; it does not know what they mean. The application (the job ledger,
``daemon.ledger.shard.LedgerShards``) gives it, through this one typed interface:

- ``machine(committee)``: a fresh state machine for a shard committee (the state-machine factory);
- ``batcher(operations)``: how queued operations combine into one request, or None;
- ``pack(operation)``: the operation as it goes into a request (the ledger compresses large
  ones); its machine undoes it;
- ``tick(shard, machine, now, wall_ms, queued)``: operations a member submits on its own to a
  shard it sits on (the ledger's clock reports), called on every service tick with the
  replica's machine. ``now`` is the service's clock (seconds), ``wall_ms`` the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from consensus.statemachine import StateMachine


class ShardApplication(Protocol):
    def machine(self, committee: tuple[bytes, ...]) -> StateMachine: ...

    def batcher(self, operations: list[bytes]
                ) -> tuple[bytes, Callable[[bytes], list[bytes]]] | None: ...

    def pack(self, operation: bytes) -> bytes: ...

    def tick(self, shard: int, machine: Any, now: float, wall_ms: int, queued: int
             ) -> list[bytes]: ...

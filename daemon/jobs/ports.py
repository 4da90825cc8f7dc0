"""The interfaces a job's three roles (submitter, member, worker) use, one per neighbour.

Read these to follow a job: the submitter ``order``s a ``Submit`` on its shard (``Ledger``);
members, after each committed batch, ``send`` offers to workers and votes to the submitter
(``Peers``); workers ``hand_over`` outputs to the submitter and ``order`` their results; the
submitter checks votes against ``committee_of`` and seals certificates with ``chain_before``.

- ``Ledger``          -- the committees, as the job roles see them (``CommitteeLedger``).
- ``Peers``           -- the jobs protocol between nodes (``JobsService`` implements it).
- ``CandidateSource`` -- placement candidates from the soft state (``SoftStateService``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from daemon.committees.requests import CommitteeUnavailable
from daemon.committees.service import CommitteeService
from daemon.ledger.shard import ledger_operation
from daemon.ledger.state import READ_ONLY
from protocol.canonical import packb, unpackb
from protocol.errors import RemoteProtocolError
from protocol.messages import ledger as ops
from protocol.messages.tasks import CheckpointReady, OutputReady


class Ledger(Protocol):
    network: str

    def shard_of(self, key: bytes) -> int:
        """The shard whose committee orders the job with this id."""

    def committee_of(self, shard: int, epoch: int) -> tuple[bytes, ...] | None:
        """The members' public keys of ``shard``'s committee in ``epoch``, if known."""

    def chain_before(self, epoch: int) -> tuple[bytes, ...]:
        """The sealed epoch notices from the genesis up to ``epoch`` (a result directory's
        ``epoch_chain.json``, an FL round's certificates)."""

    def member_count(self) -> int:
        """Members of the current epoch (how many volunteers a job can count on at most)."""

    async def order(self, shard: int, op: ops.Operation) -> dict[str, Any]:
        """Order ``op`` on ``shard``'s ledger; its reply. Raises ``CommitteeUnavailable``."""

    def ordering_s(self, shard: int) -> float:
        """How long ordering a request on ``shard`` takes this node now (seconds; 0 unknown)."""


class Peers(Protocol):
    def send(self, node_id: str, msg: Any) -> None:
        """Seal ``msg`` and send it on the jobs protocol (to ourselves: handled at once)."""

    async def hand_over(self, submitter: str, ready: OutputReady | CheckpointReady) -> bool:
        """Tell the submitter our output (or a checkpoint) is ready; True once it has it."""

    def connected(self) -> Iterable[str]:
        """Peers we have a connection to now."""


class CandidateSource(Protocol):
    def candidates(self, toward: str | None = None,
                   nbytes: int = 0) -> tuple[ops.CandidateWire, ...]:
        """Placement candidates: capability records as the soft state has them now; with
        ``toward`` (a job's submitter), each one's link cost is the predicted time to send it
        ``nbytes`` over the published link estimates."""


class CommitteeLedger:
    """``Ledger`` over this node's committees service."""

    def __init__(self, committees: CommitteeService) -> None:
        self.committees = committees
        self.network = committees.network

    def shard_of(self, key: bytes) -> int:
        return self.committees.shard_of(key)

    def committee_of(self, shard: int, epoch: int) -> tuple[bytes, ...] | None:
        cfg = self.committees.epochs.config(epoch)
        return cfg.committees.get(shard) if cfg else None

    def chain_before(self, epoch: int) -> tuple[bytes, ...]:
        notices = (self.committees.epochs.notice(e) for e in range(epoch))
        return tuple(raw for raw in notices if raw is not None)

    def member_count(self) -> int:
        return len(self.committees.epoch.members)

    def ordering_s(self, shard: int) -> float:
        client = self.committees.clients.get(shard)
        return client.recent_latency() if client is not None else 0.0

    async def order(self, shard: int, op: ops.Operation) -> dict[str, Any]:
        """A read (``Query``, ``WorkerQuery``) is answered from our own replica's committed
        state when we sit on the shard's committee (``CommitteeService.local_machine``): a
        busy 30-member committee took 6-13 s to order each ``jobs.status``, and every read it
        ordered delayed the writes behind it. A job our replica does not know yet is asked of
        the committee: it may be behind."""
        if isinstance(op, READ_ONLY):
            machine = self.committees.local_machine(shard)
            if machine is not None:
                local = machine.ledger.read(op)
                if "error" not in local:
                    return unpackb(packb(local))  # the ordered reply's very shape
        reply = await self.committees.submit(shard, ledger_operation(op))
        try:
            out = unpackb(reply)
        except RemoteProtocolError:
            raise CommitteeUnavailable(f"the committee replied with garbage: {reply[:60]!r}") from None
        return out if isinstance(out, dict) else {"error": repr(out)}

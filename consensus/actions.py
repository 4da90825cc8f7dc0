"""What a replica asks its shell to do: typed, frozen actions.

The ordering contract
---------------------
``Replica.receive`` and ``Replica.tick`` return a list. The shell carries it out **in list
order**, and every ``Persist`` must be durable (SQLite transaction committed, WAL synced) before
any ``Send`` or ``Broadcast`` *after it in the same list* leaves the process. The replica puts a
``Persist`` before each message whose safety depends on it (an accepted pre-prepare before the
prepare that votes for it; a new view number before the view change; a prepared certificate
before the commit), so a crash between the two can never make the restarted replica vote
differently. Several consecutive ``Persist`` entries may go into one transaction.

``Committed``, ``ViewEntered``, ``StateInstalled`` and ``Misbehaviour`` are information for the
shell (notify waiters, log, penalise peers); they never need to be durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from consensus.evidence import Equivocation, VoteConflict
from consensus.statemachine import ClientRequest
from protocol.messages.pbft import QuorumCert


@dataclass(frozen=True, slots=True)
class Persist:
    """Upsert (``value`` bytes) or delete (``value`` None) one record of the replica's durable
    store. Keys are short ASCII strings; ``consensus.persist`` defines them and reads them back."""

    key: str
    value: bytes | None


@dataclass(frozen=True, slots=True)
class Send:
    """Send sealed bytes to one node (a replica or a client), named by its public key."""

    to: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send sealed bytes to every *other* member of this committee, but those in ``skip``:
    members known to have moved past the view a vote or pre-prepare is of, which drop it
    unread (``Replica._past_our_view``). A shell that floods a large committee's mesh sends
    to all its neighbours regardless (they relay)."""

    data: bytes
    skip: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class Committed:
    """Batch ``seq`` committed and was executed (in order, once per replica life; after a restart
    the replica re-executes from its last stable checkpoint and reports again)."""

    seq: int
    view: int
    digest: bytes
    requests: tuple[ClientRequest, ...]
    results: tuple[bytes | None, ...]
    """One per request; None for a duplicate that was not executed again."""
    qc: QuorumCert | None
    """The quorum certificate, when the replica saw 2f+1 valid votes (it always has in the
    normal case; a replica that caught up by state transfer has none for older batches)."""


@dataclass(frozen=True, slots=True)
class ViewEntered:
    view: int
    primary: int


@dataclass(frozen=True, slots=True)
class StateInstalled:
    """State transfer finished: the state is now the stable checkpoint (seq, digest)."""

    seq: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """A peer sent something only a faulty node sends. ``evidence`` (when present) convinces a
    third party; otherwise this is local knowledge, good for rate limiting only."""

    offender: bytes
    reason: str
    evidence: Equivocation | VoteConflict | None = None


@dataclass(frozen=True, slots=True)
class EpochEnded:
    """This committee executed ``EndEpoch`` at ``seq``; its final state is the checkpoint
    (seq, digest), proven by ``proof`` (2f+1 signed checkpoints) once that is stable."""

    seq: int
    digest: bytes
    proof: tuple[bytes, ...]


Action = Union[Persist, Send, Broadcast, Committed, ViewEntered, StateInstalled, Misbehaviour,
               EpochEnded]

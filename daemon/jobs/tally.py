"""Counting what committee members say, for the worker and the submitter. Pure.

- ``OfferTally`` -- a worker runs an offer once f+1 members of the shard's committee (of the
  epoch the offer names) sent the same one: at least one correct member's ledger assigned it.
- ``VoteTally``  -- a submitter's result is certified once 2f+1 distinct members signed the
  same result statement: their signatures are the ``ResultCertificate``.

Both are bounded: a flood of offers or votes for made-up tasks cannot grow them without limit.
``missing`` says which tasks a submitter asks votes for again (``AskVotes``).
"""

from __future__ import annotations

from consensus.committee import max_faulty
from consensus.quorum import quorum_size
from daemon.ledger.certificate import ResultCertificate, statement
from protocol.canonical import packb
from protocol.identity import verify_signature
from protocol.messages.tasks import ResultVote, TaskOffer
from protocol.schema import encode_body

ASK_VOTES_S = 60.0
"""How often a submitter asks again for the votes of tasks it holds no certificate for."""
MAX_ACCEPTED = 4096
MAX_OPEN_VOTES = 100_000

OfferKey = tuple[bytes, int, int]
"""(job, task, replica)."""


class OfferTally:
    def __init__(self, max_accepted: int = MAX_ACCEPTED) -> None:
        self.max_accepted = max_accepted
        self._votes: dict[OfferKey, dict[bytes, set[bytes]]] = {}
        self.accepted: dict[OfferKey, TaskOffer] = {}
        """Offers taken (the latest ``max_accepted``): a late copy is not run twice."""
        self.ignored = 0

    def add(self, sender: bytes, offer: TaskOffer, committee: tuple[bytes, ...] | None
            ) -> TaskOffer | None:
        """The offer, the first time f+1 members of ``committee`` sent it; else None."""
        if committee is None or sender not in committee:
            self.ignored += 1
            return None
        key = (offer.job, offer.task, offer.replica)
        if key in self.accepted:
            return None
        body = packb(encode_body(offer, validate=False))
        votes = self._votes.setdefault(key, {})
        voters = votes.setdefault(body, set())
        voters.add(sender)
        taken = None
        if len(voters) >= max_faulty(len(committee)) + 1:
            del self._votes[key]
            if len(self.accepted) >= self.max_accepted:
                self.accepted.pop(next(iter(self.accepted)))
            self.accepted[key] = taken = offer
        if len(self._votes) > self.max_accepted:
            self._votes.pop(next(iter(self._votes)))
        return taken


class VoteTally:
    """Votes per task of our jobs until 2f+1 agree. A certificate carries no epoch chain: the
    result directory holds it once for all of them (``daemon.ledger.certificate``)."""

    def __init__(self, network: str) -> None:
        self.network = network
        self._votes: dict[tuple[bytes, int], dict[bytes, dict[int, bytes]]] = {}
        self.bad_signatures = 0

    def add(self, sender: bytes, v: ResultVote, committee: tuple[bytes, ...] | None
            ) -> ResultCertificate | None:
        """The certificate, when this vote completes one; else None. The caller drops votes
        for jobs it did not submit and tasks already certified (then calls ``forget``)."""
        if committee is None or sender not in committee:
            return None
        fields = (self.network, v.shard, v.epoch, v.seq, v.job, v.task, int(v.status),
                  v.exit_code, v.output_hash, v.output_size, v.agreed, v.stderr_hash,
                  v.stderr_size)
        stmt = statement(*fields)
        if not verify_signature(sender, stmt, v.signature):
            self.bad_signatures += 1
            return None
        if (v.job, v.task) not in self._votes and len(self._votes) >= MAX_OPEN_VOTES:
            self._votes.pop(next(iter(self._votes)))
        per_task = self._votes.setdefault((v.job, v.task), {})
        sigs = per_task.setdefault(stmt, {})
        sigs[committee.index(sender)] = v.signature
        if len(sigs) < quorum_size(len(committee)):
            return None
        del self._votes[(v.job, v.task)]
        return ResultCertificate(self.network, v.shard, v.epoch, v.seq, v.job, v.task,
                                 int(v.status), v.exit_code, v.output_hash, v.output_size,
                                 committee, tuple(sorted(sigs.items())), (), v.agreed,
                                 v.stderr_hash, v.stderr_size)

    def forget(self, job: bytes, task: int) -> None:
        self._votes.pop((job, task), None)


def missing(tasks: int, certified: set[int] | frozenset[int],
            limit: int = 2048) -> tuple[int, ...]:
    """The first ``limit`` tasks of a job of ``tasks`` that have no certificate (those the
    ledger has not accepted yet are ignored by it)."""
    out: list[int] = []
    for i in range(tasks):
        if i not in certified:
            out.append(i)
            if len(out) >= limit:
                break
    return tuple(out)

"""The tasks a worker holds, kept across a crash of its daemon.

A worker that accepted a task (f+1 identical offers from the task's committee) and then
died (a crash, a kill, power lost) comes back knowing nothing of it, while the ledger still
counts the replica as running there. One it had started is placed again only when its lease
ends (twice the wall limit and a minute: three minutes for the examples), and the job waits
that long for it: a one-node network whose only volunteer was killed mid-job sat at 23 of
24 tasks for 187 s. So the worker keeps each accepted offer in its database until the task
ends here, and at start runs again those whose lease has not ended, as a BOINC client
resumes its tasks after a reboot. The ledger still holds the replica for this worker, so
its report counts; one whose lease ended meanwhile was placed again elsewhere and is dropped.
A clean stop hands the tasks back instead (``ledger.Leave``) and forgets them here.

What is kept is the offer as the committee sent it, with the wall time it was accepted; a
record that does not decode (a damaged database, an older format) is dropped, never run.
"""

from __future__ import annotations

import logging
from typing import Any

from daemon.ledger.records import lease_for
from daemon.storage.db import Database
from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.messages.tasks import TaskOffer
from protocol.schema import encode_body, struct_spec

log = logging.getLogger("novacron.jobs.held")

NAMESPACE = "jobs/held"
FORMAT = 1


def _key(job: bytes, task: int, replica: int) -> bytes:
    return packb([job, task, replica])


def lease_ms(offer: TaskOffer) -> int:
    """How long the ledger holds the offered replica for us (``records.lease_for``)."""
    return lease_for(offer.wall_ms)


class HeldOffers:
    """Accepted offers in the node's database, until their task ends here."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def keep(self, offer: TaskOffer, accepted_ms: int) -> None:
        self.db.put(NAMESPACE, _key(offer.job, offer.task, offer.replica),
                    packb([FORMAT, accepted_ms, encode_body(offer, validate=False)]))

    def drop(self, job: bytes, task: int, replica: int) -> None:
        self.db.delete(NAMESPACE, _key(job, task, replica))

    def clear(self) -> None:
        self.db.clear(NAMESPACE)

    def take(self, now_ms: int) -> list[TaskOffer]:
        """The offers still leased at ``now_ms`` (wall clock), oldest first; the rest, and
        any record that does not decode, are forgotten."""
        kept: list[tuple[int, TaskOffer]] = []
        for key, value in self.db.scan(NAMESPACE):
            try:
                accepted_ms, offer = _decode(value)
            except (RemoteProtocolError, ValueError) as err:
                log.warning("dropping a held task that does not decode: %s", err)
                self.db.delete(NAMESPACE, key)
                continue
            if now_ms - accepted_ms >= lease_ms(offer):
                self.db.delete(NAMESPACE, key)
                continue
            kept.append((accepted_ms, offer))
        kept.sort(key=lambda k: k[0])
        return [offer for _, offer in kept]


def _decode(value: bytes) -> tuple[int, TaskOffer]:
    v: Any = unpackb(value)
    if type(v) is not list or len(v) != 3 or v[0] != FORMAT or type(v[1]) is not int:
        raise MalformedMessage(f"not a held offer of format {FORMAT}")
    offer = struct_spec(TaskOffer).decode(v[2])
    assert isinstance(offer, TaskOffer)
    return v[1], offer

"""Which blobs a submitter must keep while its jobs run, kept across restarts.

A job's module and large inputs are fetched by every worker its tasks are placed on, and a
resumable task's checkpoints by the volunteer that takes it over; the blob store evicts
unpinned blobs first when it is over its cap. So the submitter pins them for as long as the
job can still place or resume a task, and no longer: a volunteer who submits jobs for months
must not find their disk filled with the blobs of jobs that ended long ago.

Pins live in the database, so a daemon restarted in the middle of a job pins them again at
start (the blob store's own pin set is in memory): ``NS_PINS`` keys are job id + digest (a
job's pins), ``NS_HOLDERS`` the same pairs digest first (who else holds a blob), so releasing
one blob costs a prefix lookup, not a scan of every pin of a 100,000-task job. A blob pinned
by two jobs (the same module submitted twice) stays pinned until both let go.
"""

from __future__ import annotations

from collections.abc import Iterable

from daemon.blobs.store import BlobStore
from daemon.storage.db import Database

NS_PINS = "job-pins"
NS_HOLDERS = "pin-holders"
ID = 32


class JobPins:
    def __init__(self, db: Database, store: BlobStore) -> None:
        self.db = db
        self.store = store

    def restore(self, jobs: Iterable[bytes]) -> int:
        """Pin again what the given (still known) jobs held before a restart; pins of jobs we
        no longer know are dropped. Returns the number of blobs pinned."""
        known = set(jobs)
        pinned = 0
        for key, _ in self.db.scan(NS_PINS):
            if key[:ID] in known:
                self.store.pinned.add(key[ID:])
                pinned += 1
            else:
                self.db.delete(NS_PINS, key)
                self.db.delete(NS_HOLDERS, key[ID:] + key[:ID])
        return pinned

    def hold(self, job: bytes, digests: Iterable[bytes]) -> None:
        digests = list(digests)
        with self.db.transaction():
            for d in digests:
                self.db.put(NS_PINS, job + d, b"")
                self.db.put(NS_HOLDERS, d + job, b"")
        self.store.pinned.update(digests)

    def release(self, job: bytes, digests: Iterable[bytes] | None = None) -> int:
        """Unpin ``digests`` of ``job`` (all of the job's when None) unless another job still
        holds them. Returns how many blobs became evictable."""
        if digests is None:
            digests = [key[ID:] for key, _ in self.db.scan(NS_PINS, job)]
        freed = set()
        with self.db.transaction():
            for d in set(digests):
                self.db.delete(NS_PINS, job + d)
                self.db.delete(NS_HOLDERS, d + job)
                if not self.db.scan(NS_HOLDERS, d):
                    freed.add(d)
        self.store.pinned.difference_update(freed)
        return len(freed)

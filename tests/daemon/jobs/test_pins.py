"""A submitter's pins (real SQLite, real blob store): kept across a restart, shared blobs kept
until every job holding them lets go, and nothing kept for a job that ended."""

from pathlib import Path

from daemon.blobs.store import BlobStore
from daemon.jobs.pins import JobPins
from daemon.storage.db import Database

A, B = b"a" * 32, b"b" * 32


def test_pins_survive_a_restart_and_shared_blobs_wait_for_every_holder(tmp_path: Path) -> None:
    store, db = BlobStore(tmp_path / "blobs"), Database(tmp_path / "node.db")
    module, inp, other = store.put(b"module"), store.put(b"input"), store.put(b"other")
    JobPins(db, store).hold(A, [module, inp])
    JobPins(db, store).hold(B, [module, other])
    db.close()

    store, db = BlobStore(tmp_path / "blobs"), Database(tmp_path / "node.db")  # a restart
    assert store.pinned == set()
    pins = JobPins(db, store)
    assert pins.restore([A, B]) == 4 and store.pinned == {module, inp, other}
    assert pins.release(A) == 1 and store.pinned == {module, other}  # B still runs the module
    assert pins.release(B, [other]) == 1 and store.pinned == {module}
    assert pins.release(B) == 1 and store.pinned == set()


def test_pins_of_jobs_no_longer_known_are_dropped_at_start(tmp_path: Path) -> None:
    store, db = BlobStore(tmp_path / "blobs"), Database(tmp_path / "node.db")
    JobPins(db, store).hold(A, [store.put(b"x")])
    store.pinned.clear()
    assert JobPins(db, store).restore([B]) == 0 and store.pinned == set()
    assert JobPins(db, store).restore([A]) == 0  # and not brought back later


def test_an_unpinned_blob_of_an_ended_job_is_evicted_first(tmp_path: Path) -> None:
    store, db = BlobStore(tmp_path / "blobs", cap_bytes=2500), Database(tmp_path / "node.db")
    pins = JobPins(db, store)
    old = store.put(b"o" * 1000)
    pins.hold(A, [old])
    keep = store.put(b"k" * 1000)
    pins.hold(B, [keep])
    store.put(b"n" * 1000)  # over the cap: only this unpinned newcomer may go
    assert store.has(old) and store.has(keep)
    pins.release(A)
    store.put(b"m" * 1000)
    assert not store.has(old) and store.has(keep)

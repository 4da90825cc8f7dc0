"""The load entry beside the capability record (``daemon.softstate.load``): the newer of the
two counts, a writer's malformed entry leaves its record's load standing, and a change of
load costs a fraction of rewriting the record; entries are decoded once per value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from crdt import CrdtReplica, DotSigner
from daemon.capabilities import AvailabilityRecorder, build_record, record_to_wire
from daemon.softstate.load import LOAD, LoadBook, from_wire
from daemon.softstate.service import CAPS, SCHEMA
from daemon.storage.db import Database
from protocol.identity import NodeIdentity

NET = "novacron-test"
NOW = 1_750_000_000_000
ME = NodeIdentity(bytes([5]) * 32)


def _replica() -> CrdtReplica:
    return CrdtReplica(ME.node_id, SCHEMA, session=1, signer=DotSigner(ME, NET))


NO_HARDWARE = {  # the report of a volunteer's machine with neither TPM nor TEE, as published
    "evidence": None, "kind": "none", "verified_by": [],
    "reasons": ["TPM 2.0: /dev/tpmrm0: no device node; /dev/tpm0: no device node; the kernel "
                "reports no TPM (/sys/class/tpm is empty or absent)",
                "configfs-tsm: /sys/kernel/config/tsm/report: configfs not supported by this "
                "kernel (not in /proc/filesystems)",
                "AMD SEV-SNP: /dev/sev-guest: no device node (not an SEV-SNP guest, or the "
                "sev_guest module is not loaded)",
                "Intel TDX: /dev/tdx_guest: no device node (not a TDX guest, or the tdx_guest "
                "module is not loaded)"],
    "self_reported": {"arch": "x86_64", "cpu_count": 2, "cpu_model": "AMD EPYC",
                      "kernel": "6.18.44", "label": "self-reported",
                      "memory_bytes": 25276194816, "os": "Debian GNU/Linux 12 (bookworm)"}}


def _record(load: int, at_ms: int, tmp: Path | None = None):
    """A record as a daemon writes it; with ``tmp``, carrying a day's availability summary
    and an attestation report."""
    availability = None
    if tmp is not None:
        recorder = AvailabilityRecorder(Database(tmp / "a.db"))
        recorder.started(at_ms / 1000 - 86_400)
        for k in range(0, 86_400, 600):
            recorder.alive(at_ms / 1000 - 86_400 + k)
        availability = recorder.summary_wire(at_ms / 1000)
    return build_record(ME.node_id, slots=2, memory_mib=1024, runtimes=("wasm32-wasi",),
                        listen=("/ip4/127.0.0.1/tcp/4001",),
                        attestation=NO_HARDWARE if tmp is not None else None,
                        availability=availability, load_permille=load, domain="",
                        now_ms=at_ms, generation=at_ms)


def test_the_newer_of_record_and_entry_gives_the_load() -> None:
    book = LoadBook(_replica(), ME.node_id)
    record = _record(200, NOW)
    assert book.current(record) == 200  # no entry yet
    book.write(900, NOW + 1000)
    assert book.current(record) == 900
    assert book.current(dataclasses.replace(record, updated_ms=NOW + 2000)) == 200
    assert book.written == (900, NOW + 1000)
    book.write(5000, NOW + 3000)  # kept in range
    assert book.entry(ME.node_id) == (1000, NOW + 3000)


def test_an_entry_is_decoded_once_per_value() -> None:
    """Placement reads every node's load; decoding each entry on every read was the cost."""
    book = LoadBook(_replica(), ME.node_id)
    book.write(400, NOW)
    first = book.entry(ME.node_id)
    assert first == (400, NOW) and book.entry(ME.node_id) is first
    book.write(600, NOW + 1)
    assert book.entry(ME.node_id) == (600, NOW + 1)  # a new value is decoded again
    assert book.entry("someone else") is None


def test_malformed_entries_are_ignored() -> None:
    for bad in (None, [1], [1, 2, 3], ["1", 2], [1001, 5], [-1, 5], [5, -1], [True, 5], 7):
        assert from_wire(bad) is None, bad
    r = _replica()
    r.update(LOAD, lambda m, w: m.p_set(w, ME.node_id, ["busy", NOW + 5]), NOW)
    assert LoadBook(r, ME.node_id).current(_record(300, NOW)) == 300


def test_a_load_change_is_a_fraction_of_a_record_rewrite(tmp_path: Path) -> None:
    r = _replica()
    rec = _record(0, NOW, tmp_path)
    r.update(CAPS, lambda m, w: m.p_set(w, ME.node_id, record_to_wire(rec)), NOW)
    head = r.books.buffer.head
    r.update(CAPS, lambda m, w: m.p_set(w, ME.node_id, record_to_wire(
        dataclasses.replace(rec, load=1000, updated_ms=NOW + 1))), NOW + 1)
    LoadBook(r, ME.node_id).write(1000, NOW + 2)
    _, _, by_record = r.books.buffer.interval(head, 1)
    _, _, by_entry = r.books.buffer.interval(head + 1, 1)
    record_bytes = len(r._delta_msg(head + 1, head + 1, by_record).objects[0].data)
    entry_bytes = len(r._delta_msg(head + 2, head + 2, by_entry).objects[0].data)
    assert entry_bytes * 5 < record_bytes, (entry_bytes, record_bytes)


def test_a_node_that_lost_its_replica_still_gets_its_load_entries_taken() -> None:
    # Its counter starts again at 1: without a reserved start, its entries take dots the
    # peers covered long ago, and they drop them.
    peer = CrdtReplica("peer", SCHEMA, session=9)
    old = _replica()
    for k in range(5):
        LoadBook(old, ME.node_id).write(100 * k, NOW + k)
    for name, obj in old.objects.items():
        peer.objects[name].join(obj.copy())
    fresh = CrdtReplica(ME.node_id, SCHEMA, session=2, signer=DotSigner(ME, NET))
    fresh.reserve_own(LOAD, NOW + 60_000)  # as the service does at start (its start time)
    LoadBook(fresh, ME.node_id).write(900, NOW + 60_000)
    peer.objects[LOAD].join(fresh.objects[LOAD].copy())
    assert LoadBook(peer, ME.node_id).entry(ME.node_id) == (900, NOW + 60_000)

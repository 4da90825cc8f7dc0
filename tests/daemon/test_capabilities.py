import pytest

from daemon.capabilities import (
    AvailabilityRecorder, build_record, record_from_wire, record_to_wire,
)
from daemon.sched import AvailabilitySummary
from daemon.storage.db import Database
from protocol.errors import MalformedMessage


def test_availability_survives_restart_and_crash(tmp_path):
    db = Database(tmp_path / "n.db")
    rec = AvailabilityRecorder(db)
    rec.started(1000.0)
    rec.alive(1060.0)
    rec.stopped(1100.0)
    rec.started(2000.0)
    rec.alive(2060.0)  # then a crash: no stopped()
    db.close()
    again = AvailabilityRecorder(Database(tmp_path / "n.db"))
    again.started(3000.0)
    sessions = again.history.sessions
    assert sessions[0] == (1000.0, 1100.0)
    assert sessions[1] == (2000.0, 2060.0)  # ended at the last heartbeat
    summary = AvailabilitySummary.from_wire(again.summary_wire(3000.0))
    assert summary is not None


def test_record_round_trip_and_checks():
    rec = build_record("12D3KooWx", slots=2, memory_mib=2048, runtimes=("wasm32-wasi",),
                       listen=("/ip4/127.0.0.1/tcp/1/p2p/12D3KooWx",), attestation={"kind": "none"},
                       availability=None, load_permille=5000, domain="", now_ms=1, generation=1)
    assert rec.load == 1000 and rec.domain == "12D3KooWx"
    assert record_from_wire(record_to_wire(rec), "12D3KooWx") == rec
    with pytest.raises(MalformedMessage, match="under key"):
        record_from_wire(record_to_wire(rec), "12D3KooWother")
    wire = record_to_wire(rec)
    wire[2] = -1
    with pytest.raises(MalformedMessage, match="cores"):
        record_from_wire(wire)

"""TCG crypto-agile event log parsing and replay."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.attest.tpm.eventlog import EV_NO_ACTION, parse_event_log, replay
from protocol.errors import MalformedMessage
from tests.daemon.attest.attest_fixtures import build_event_log

SHA256 = 0x000B
EVENTS = [(0, 0x80000008, hashlib.sha256(b"firmware").digest(), b"fw"),
          (7, 0x80000001, hashlib.sha256(b"SecureBoot").digest(), b"sb"),
          (0, 0x00000007, hashlib.sha256(b"separator").digest(), b"\x00" * 4)]


def extend(value: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(value + digest).digest()


def test_replay_matches_the_extend_rule() -> None:
    log = parse_event_log(build_event_log(EVENTS))
    assert log.algorithms == ((SHA256, 32),) and len(log.events) == 3
    assert replay(log, SHA256) == {
        0: extend(extend(bytes(32), EVENTS[0][2]), EVENTS[2][2]),
        7: extend(bytes(32), EVENTS[1][2])}


def test_startup_locality_and_dynamic_pcrs_start_where_the_tpm_does() -> None:
    locality = (0, EV_NO_ACTION, bytes(32), b"StartupLocality\x00\x03")
    drtm = (17, 0x401, hashlib.sha256(b"sinit").digest(), b"")
    values = replay(parse_event_log(build_event_log([locality, EVENTS[0], drtm])), SHA256)
    assert values[0] == extend(bytes(31) + b"\x03", EVENTS[0][2])
    assert values[17] == extend(b"\xff" * 32, drtm[2])


def test_trailing_padding_ends_the_log() -> None:
    log = parse_event_log(build_event_log(EVENTS) + b"\xff" * 64)
    assert len(log.events) == 3


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda b: b[:50], "truncated"),
    (lambda b: b[:32] + b"Spec ID Event02\x00" + b[48:], "not a crypto-agile log"),
    (lambda b: b[:4] + b"\x01" + b[5:], "not the Spec ID event"),
    (lambda b: b[:-10], "truncated"),
])
def test_broken_logs_are_clear_errors(mutate, message: str) -> None:
    with pytest.raises(MalformedMessage, match=message):
        parse_event_log(mutate(build_event_log(EVENTS)))


def test_missing_bank_is_an_error() -> None:
    with pytest.raises(MalformedMessage, match="no digests for algorithm 0x0004"):
        replay(parse_event_log(build_event_log(EVENTS)), 0x0004)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_corrupted_logs_raise_only_malformed_message(data: st.DataObject) -> None:
    raw = bytearray(build_event_log(EVENTS))
    for _ in range(data.draw(st.integers(1, 5))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        replay(parse_event_log(bytes(raw[:data.draw(st.integers(0, len(raw)))])), SHA256)
    except MalformedMessage:
        pass

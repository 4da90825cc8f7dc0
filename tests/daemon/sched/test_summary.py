import math

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from daemon.sched.history import AvailabilityHistory
from daemon.sched.profile import WeekProfile
from daemon.sched.summary import AvailabilitySummary, summarize
from daemon.sched.timebase import HOUR, WEEK, WEEK_BINS
from protocol.errors import MalformedMessage, RemoteProtocolError, UnsupportedVersion
from testnet.forecast import history_at
from testnet.traces import EPOCH_MONDAY, generate_traces

NOW = EPOCH_MONDAY + 4 * WEEK


def _office_summary() -> AvailabilitySummary:
    trace = generate_traces(5, seed=2, mix={"office": 1.0})[0]
    return summarize(history_at(trace, EPOCH_MONDAY, NOW), NOW)


def test_summary_survives_msgpack_and_fits_in_a_few_hundred_bytes():
    s = _office_summary()
    assert not s.profile.is_flat
    raw = msgpack.packb(s.to_wire(), use_bin_type=True)
    assert len(raw) <= 300
    assert AvailabilitySummary.from_wire(msgpack.unpackb(raw, raw=False)) == s


def test_flat_profiles_are_not_sent():
    s = summarize(AvailabilityHistory().started(NOW - HOUR).stopped(NOW - 1).started(NOW), NOW)
    assert "p" not in s.to_wire()
    assert len(msgpack.packb(s.to_wire())) < 80


def test_a_new_node_says_it_has_no_model():
    s = summarize(AvailabilityHistory().started(NOW - 600), NOW)
    assert not s.has_model and s.up_since == NOW - 600 and "k" not in s.to_wire()


def _wire(**over):
    base = {"v": 1, "n": 12, "x": 100.0, "f": 0.7, "k": 0.6, "s": 9.0, "u": NOW - HOUR}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    "obj",
    [
        [1, 2, 3],
        {f"k{i}": 0 for i in range(40)},
        _wire(v=None),
        _wire(v=True),
        _wire(v=1.0),
        _wire(n=-1),
        _wire(n=True),
        _wire(n=1.5),
        _wire(x=float("nan")),
        _wire(f=1.5),
        _wire(k=0.0),
        _wire(s=None),
        _wire(k="big"),
        _wire(u=-5.0),
        _wire(u=float("inf")),
        _wire(p=b"\x01" * 100),
        _wire(p="not bytes"),
    ],
)
def test_garbage_is_rejected_as_malformed(obj):
    with pytest.raises(MalformedMessage):
        AvailabilitySummary.from_wire(obj)


def test_unknown_version_is_its_own_error():
    with pytest.raises(UnsupportedVersion):
        AvailabilitySummary.from_wire(_wire(v=2))


def test_implausible_claims_are_clamped_not_believed():
    s = AvailabilitySummary.from_wire(_wire(k=1e6, s=1e12, n=10**9, x=1e12))
    assert s.shape == 10.0 and s.scale_h == 8760.0
    assert s.events == 1_000_000 and s.exposure_h == 87_600.0


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**7), st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=200), st.text(max_size=5), st.lists(st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list("vnxfksupz")), _values, max_size=9))
def test_decoding_untrusted_maps_raises_only_protocol_errors(obj):
    try:
        s = AvailabilitySummary.from_wire(obj)
    except RemoteProtocolError:
        return
    assert 0.0 <= s.on_fraction <= 1.0 and s.events >= 0
    if s.has_model:
        assert 0.1 <= s.shape <= 10.0 and math.isfinite(s.scale_h)
    assert AvailabilitySummary.from_wire(s.to_wire()) == s


def test_profile_bytes_of_any_value_decode():
    s = AvailabilitySummary.from_wire(_wire(p=bytes(np.arange(WEEK_BINS, dtype=np.uint8))))
    assert s.profile == WeekProfile.from_bytes(bytes(np.arange(WEEK_BINS, dtype=np.uint8)))

"""Random and mutated bytes fed to every protocol decoder raise only protocol errors.

The normal suite runs a few hundred examples per decoder (hypothesis drives the choice, so
failures shrink); ``scripts/fuzz_protocol.py`` runs 10,000+ per decoder.
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from protocol.errors import RemoteProtocolError
from tests.protocol.fuzz_targets import TARGETS, mutate, seeds_for


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decoder_raises_only_protocol_errors(target, data):
    if data.draw(st.booleans()):
        raw = data.draw(st.binary(max_size=300))
    else:
        rng = random.Random(data.draw(st.integers(0, 2**32)))
        raw = mutate(rng, rng.choice(seeds_for(target)))
    try:
        TARGETS[target](raw)
    except RemoteProtocolError:
        pass


def test_fuzz_script_reports_no_escapes():
    import scripts.fuzz_protocol as fuzz

    report = fuzz.fuzz(examples=50, seed=3)
    assert report["passed"], report["escapes"][:3]
    assert all(sum(t["rejected"].values()) > 0 for t in report["targets"].values())

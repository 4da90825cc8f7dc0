import numpy as np
import pytest

from testnet.traces.fta import format_event_trace, parse_event_trace
from testnet.traces.probes import probe_traces


def test_runs_of_answered_probes_become_sessions():
    m = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [0, 1, 1, 1]])
    a, b, c = probe_traces(m, t0=1000.0, step_s=10.0, kind="pings", names=["a", "b", "c"])
    assert a.up.tolist() == [[1000.0, 1020.0], [1030.0, 1040.0]]  # the last runs to t_last + step
    assert not b.ever_up
    assert c.up.tolist() == [[1010.0, 1040.0]] and c.name == "c"


def test_probe_traces_round_trip_through_the_archive_format():
    rng = np.random.default_rng(3)
    m = (rng.uniform(size=(20, 100)) < 0.7).astype(int)
    traces = probe_traces(m, t0=0.0, step_s=3600.0, kind="pings")
    back = parse_event_trace(format_event_trace(traces).splitlines())
    assert len(back.hosts) + len(back.down_only) == sum(1 for t in traces if t.ever_up)
    for a, b in zip([t for t in traces if t.ever_up], back.hosts):
        assert np.array_equal(a.up, b.up)


@pytest.mark.parametrize("m", [np.array([1, 0]), np.array([[2, 0]])])
def test_bad_matrices_are_refused(m):
    with pytest.raises(ValueError):
        probe_traces(m, t0=0.0, step_s=1.0, kind="x")

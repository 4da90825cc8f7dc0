import numpy as np
import pytest

from daemon.sched.timebase import WEEK
from testnet.traces import (
    HostTrace,
    TraceFormatError,
    format_event_trace,
    generate_traces,
    load_event_trace,
    parse_event_trace,
)

# A few rows in the archive's layout: header with '#', tab-separated, event_type 1 = up.
SAMPLE = """\
# event_id\tcomponent_id\tnode_id\tplatform_id\tnode_name\tevent_type\tevent_start_time\tevent_stop_time\tevent_end_reason
0\t0\t7\t3\tpc-07\t1\t1000.0\t5000.0\t0
1\t0\t7\t3\tpc-07\t0\t5000.0\t5600.0\t1
2\t0\t7\t3\tpc-07\t1\t5600.0\t9000.0\t0
3\t0\t2\t3\tpc-02\t1\t100\t200\t0
4\t0\t2\t3\tpc-02\t1\t150\t400\t0
5\t1\t2\t3\tpc-02\t1\t900\t950\t0
"""


def test_reads_the_archive_layout():
    traces = parse_event_trace(SAMPLE.splitlines())
    assert [t.host_id for t in traces] == ["pc-02", "pc-07"]  # ordered by node id
    pc07 = traces[1]
    assert pc07.kind == "fta:3"
    assert pc07.up.tolist() == [[1000.0, 5000.0], [5600.0, 9000.0]]
    assert bool(pc07.is_up(5200.0)) is False and float(pc07.remaining_up(2000.0)) == 3000.0
    # Overlapping rows (seen in real archives) merge.
    assert traces[0].up.tolist() == [[100.0, 400.0], [900.0, 950.0]]


def test_component_filter():
    traces = parse_event_trace(SAMPLE.splitlines(), component_id="1")
    assert [t.up.tolist() for t in traces] == [[[900.0, 950.0]]]


def test_synthetic_traces_round_trip_through_the_format(tmp_path):
    traces = generate_traces(6, seed=9, duration_s=WEEK)
    path = tmp_path / "event_trace.tab"
    path.write_text(format_event_trace(traces))
    back = load_event_trace(path)
    assert len(back) == len(traces)
    for a, b in zip(traces, back):
        assert a.host_id == b.host_id
        assert np.allclose(a.up, b.up)


def test_space_separated_copies_without_header_read_too():
    text = "0 0 1 5 host-a 1 10 20 0\n1 0 1 5 host-a 1 30 40 0\n"
    (t,) = parse_event_trace(text.splitlines())
    assert t.up.tolist() == [[10.0, 20.0], [30.0, 40.0]]


@pytest.mark.parametrize(
    "line,words",
    [
        ("0\t0\t1\t5\thost\t1\t10\n", "expected 9"),
        ("0\t0\t1\t5\thost\t1\tten\t20\t0\n", "line 1"),
        ("0\t0\t1\t5\thost\t1\t30\t20\t0\n", "bad interval"),
    ],
)
def test_bad_lines_are_reported_with_their_number(line, words):
    with pytest.raises(TraceFormatError, match=words):
        parse_event_trace([line])


def test_header_must_name_the_needed_columns():
    with pytest.raises(TraceFormatError, match="header lacks"):
        parse_event_trace(["# foo\tbar\n", "1\t2\n"])


def test_overlapping_intervals_are_refused_by_the_trace_type():
    with pytest.raises(ValueError):
        HostTrace("h", "x", np.array([[0.0, 10.0], [5.0, 20.0]]))

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
    traces = parse_event_trace(SAMPLE.splitlines()).hosts
    assert [(t.host_id, t.name) for t in traces] == [("2", "pc-02"), ("7", "pc-07")]  # by node id
    pc07 = traces[1]
    assert pc07.kind == "fta:3"
    assert pc07.up.tolist() == [[1000.0, 5000.0], [5600.0, 9000.0]]
    assert bool(pc07.is_up(5200.0)) is False and float(pc07.remaining_up(2000.0)) == 3000.0
    # Overlapping rows (seen in real archives) merge.
    assert traces[0].up.tolist() == [[100.0, 400.0], [900.0, 950.0]]


def test_component_filter():
    traces = parse_event_trace(SAMPLE.splitlines(), component_id="1").hosts
    assert [t.up.tolist() for t in traces] == [[[900.0, 950.0]]]


def test_synthetic_traces_round_trip_through_the_format(tmp_path):
    traces = generate_traces(6, seed=9, duration_s=WEEK)
    path = tmp_path / "event_trace.tab"
    path.write_text(format_event_trace(traces))
    back = load_event_trace(path).hosts
    assert len(back) == len(traces)
    for a, b in zip(traces, back):
        assert a.host_id == b.name
        assert np.allclose(a.up, b.up)


def test_space_separated_copies_without_header_read_too():
    text = "0 0 1 5 host-a 1 10 20 0\n1 0 1 5 host-a 1 30 40 0\n"
    (t,) = parse_event_trace(text.splitlines()).hosts
    assert t.up.tolist() == [[10.0, 20.0], [30.0, 40.0]]


@pytest.mark.parametrize(
    "line,words",
    [
        ("0\t0\t1\t5\thost\t1\t10\n", "line 1: expected 9 fields, got 7"),
        ("0\t0\t1\t5\thost\t1\tten\t20\t0\n", "line 1"),
        ("0\t0\t1\t5\thost\t1\t30\t20\t0\n", "line 1: bad interval"),
        ("0\t0\t1\t5\thost\t2\t10\t20\t0\n", "line 1: event_type 2 is neither"),
        ("0\t0\t1\t5\thost\tup\t10\t20\t0\n", "line 1: event_type 'up' is not an integer"),
        ("0\t0\t1\t5\thost\t1\t10\tinf\t0\n", "line 1: bad interval"),
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


# The shapes of rows the archive's LANL trace really has (padding copied from it).
HEADER = "# event_id component_id node_id platform_id node_name event_type event_start_time event_stop_time event_end_reason\n"


def test_rows_padded_with_mixed_spaces_and_tabs_read():
    text = HEADER + (
        "    0\t       0\t     655\t    3\t       10.000\t         0\t   \t\t1000\t   \t\t2000\t       \t8000\n"
        "    1\t    0\t  655\t    3\t              10.000\t         1\t   2000\t   9000\t       4022\n"
        "2 0 655 3 10.000 0 9000 9500 NULL\r\n"
    )
    (t,) = parse_event_trace(text.splitlines(keepends=True)).hosts
    assert t.host_id == "655" and t.up.tolist() == [[2000.0, 9000.0]]


def test_a_stray_extra_field_is_an_error_not_a_shifted_row():
    text = HEADER + "0\t0\t1\t3\tn1\t1\t10\t20\t0\n1\t0\t1\t3\tn1\t1\t\t30\t40\t0\textra\n"
    with pytest.raises(TraceFormatError, match="line 3: expected 9 fields, got 10"):
        parse_event_trace(text.splitlines())


def test_zero_length_failures_stay_departures():
    text = HEADER + (
        "0 0 704 3 10.103 0 100 100 8000\n"      # before the first session: not a departure
        "1 0 704 3 10.103 1 100 5000 4019\n"
        "2 0 704 3 10.103 0 5000 5000 8000\n"    # crash and immediate reboot
        "3 0 704 3 10.103 1 5000 7000 3012\n"
        "4 0 704 3 10.103 0 6000 6000 8000\n"    # inside an up row: splits it
        "5 0 704 3 10.103 1 7000 8000 0\n"       # touching, no failure between: one session
    )
    et = parse_event_trace(text.splitlines())
    (t,) = et.hosts
    assert t.up.tolist() == [[100.0, 5000.0], [5000.0, 6000.0], [6000.0, 8000.0]]
    assert et.zero_length_failures == 2
    assert float(t.session_start(5000.0)) == 5000.0 and float(t.remaining_up(4999.0)) == 1.0
    assert float(t.remaining_up(6500.0)) == 1500.0


def test_hosts_with_only_down_rows_are_set_apart():
    text = HEADER + "0 0 701 3 10.100 0 1000 2000 8000\n0 0 702 3 10.101 1 10 20 0\n"
    et = parse_event_trace(text.splitlines())
    assert [t.host_id for t in et.hosts] == ["702"] and et.down_only == ("701",)


def test_a_trace_without_up_time_answers_down_instead_of_crashing():
    t = HostTrace("701", "fta:3", np.zeros((0, 2)))
    ts = np.array([0.0, 5.0])
    assert not t.is_up(ts).any() and not bool(t.is_up(3.0))
    assert np.isnan(t.session_start(ts)).all() and (t.remaining_up(ts) == 0).all()
    assert t.next_up(3.0) == float("inf") and t.on_fraction(0.0, 10.0) == 0.0


def test_scoring_points_survive_down_only_traces():
    from testnet.forecast import scoring_points

    traces = [HostTrace("a", "x", np.zeros((0, 2))), HostTrace("b", "x", np.array([[0.0, 7200.0]]))]
    pts = scoring_points(traces, 0.0, 7200.0, step_s=600.0, rng=np.random.default_rng(1))
    assert set(pts.host.tolist()) == {1} and pts.t.size > 0


def test_duplicate_names_are_different_hosts():
    text = HEADER + "0 0 656 3 10.100 1 10 20 0\n0 0 701 3 10.100 1 30 40 0\n"
    et = parse_event_trace(text.splitlines())
    assert [(t.host_id, t.name) for t in et.hosts] == [("656", "10.100"), ("701", "10.100")]
    assert et.shared_names == {"10.100": ("656", "701")}


def test_comments_and_blank_lines_are_skipped_and_overlong_lines_refused():
    text = HEADER + "\n# a note\n0 0 1 3 n 1 10 20 0\n"
    assert len(parse_event_trace(text.splitlines()).hosts) == 1
    with pytest.raises(TraceFormatError, match="line 2:"):
        parse_event_trace([HEADER, "0 " * 5000])


def test_a_file_that_is_not_text_gets_one_line(tmp_path):
    path = tmp_path / "event_trace.tab"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceFormatError, match="not UTF-8"):
        load_event_trace(path)

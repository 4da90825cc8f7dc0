"""Forecasts on public traces no one here generated (``docs/traces.md``).

The traces are public research data the project does not redistribute: they are read from
``NOVACRON_TRACES`` (default ``shared/traces`` beside the clone), and these tests skip, saying
so, where they are absent. The reader's malformed-row cases are unit-tested on rows of our own
(``tests/testnet/traces/test_fta.py``)."""

import os
from pathlib import Path

import numpy as np
import pytest

from daemon.sched.timebase import HOUR, WEEK
from testnet.forecast import evaluate_trace, rolling_folds
from testnet.traces import load_event_trace

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("NOVACRON_TRACES") or ROOT.parent / "shared" / "traces")
NEEDED = ("lanl05.tab.xz", "microsoft99.tab.xz")

pytestmark = pytest.mark.skipif(
    not all((SAMPLES / name).is_file() for name in NEEDED),
    reason=f"the public traces {', '.join(NEEDED)} are not in {SAMPLES} (see docs/traces.md)")


def test_the_samples_keep_what_makes_real_files_hard():
    lanl = load_event_trace(SAMPLES / "lanl05.tab.xz")
    assert len(lanl.hosts) > 500 and len(lanl.down_only) > 100
    assert lanl.zero_length_failures > 0 and lanl.shared_names
    assert len({t.host_id for t in lanl.hosts}) == len(lanl.hosts)
    ms = load_event_trace(SAMPLES / "microsoft99.tab.xz")
    assert len(ms.hosts) >= 390 and (ms.span[1] - ms.span[0]) == 35 * 24 * HOUR


@pytest.mark.slow
def test_desktop_forecasts_beat_the_base_rate_and_on_fraction():
    """Microsoft desktops, 150 of the sample's hosts: the fit/score protocol of the benchmark."""
    et = load_event_trace(SAMPLES / "microsoft99.tab.xz")
    hosts = et.hosts[::2][:150]
    span = et.span
    folds = rolling_folds(hosts, span, fit_s=4 * WEEK, score_s=2 * WEEK, max_folds=1)
    out = evaluate_trace(hosts, folds, horizons_h=(4,), step_s=2 * HOUR, seed=1, data_end=span[1])
    row = out["4h"]
    assert row["brier_skill_vs_base_rate"]["ours"] > 0.1, row
    assert row["ours"]["auc"] > row["on_fraction"]["auc"], row


def test_a_trace_too_short_to_fit_on_is_refused_with_a_reason():
    et = load_event_trace(SAMPLES / "microsoft99.tab.xz")
    with pytest.raises(ValueError, match="spans 1.0 days"):
        rolling_folds(et.hosts, (et.span[0], et.span[0] + 24 * HOUR), fit_s=WEEK, score_s=WEEK, max_folds=1)


def test_folds_go_where_the_hosts_are():
    et = load_event_trace(SAMPLES / "lanl05.tab.xz")
    folds = rolling_folds(et.hosts, et.span, fit_s=4 * WEEK, score_s=2 * WEEK, max_folds=4)
    assert len(folds) == 4
    for f in folds:
        active = sum(1 for t in et.hosts if t.clip(f.fit_start, f.score_end).up.size)
        assert active >= 20
    assert np.all(np.diff([f.fit_start for f in folds]) > 0)

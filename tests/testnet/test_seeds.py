"""The seed-range runner both simulator scripts use: ranges covered exactly once, tallies
merged in seed order, a crashing seed recorded as a failure, the replay line and exit code."""

from __future__ import annotations

import json

import pytest

from testnet.seeds import SeedRun, Tally, chunks, main, run_seeds


def _tally(seed: int) -> Tally:
    if seed == 13:
        raise RuntimeError("boom")
    t = Tally()
    t.sums["runs"] += 1
    t.kinds["parity"]["odd" if seed % 2 else "even"] += 1
    t.maxima["seed"] = float(seed)
    if seed % 7 == 0:
        t.fail("bad", seed, why=f"seed {seed} is a multiple of 7")
    return t


def _replay(seed: int):
    return [f"trace of {seed}"], {"seed": seed}, seed % 7 != 0


def _report(total: Tally) -> dict:
    return {"runs": total.sums["runs"], "parity": dict(total.kinds["parity"]),
            "bad": total.failed("bad"), "crashed": total.failed("crashed"),
            "max": total.maxima.get("seed")}


RUN = SeedRun(script="scripts/toy.py", description="toy", default_seeds=5,
              tally_seed=_tally, replay=_replay, report=_report, crash_as="crashed")


@pytest.mark.parametrize("start,count,procs", [(0, 1, 2), (5, 100, 2), (0, 10000, 2),
                                               (3, 7, 1), (0, 17, 16)])
def test_chunks_cover_the_range_once(start, count, procs):
    parts = chunks(start, count, procs)
    seeds = [s for lo, hi in parts for s in range(lo, hi)]
    assert seeds == list(range(start, start + count))


def test_tallies_merge_and_a_crash_is_a_finding():
    total = run_seeds(RUN, 0, 30, 1)
    assert total.sums["runs"] == 29
    assert total.kinds["parity"] == {"even": 15, "odd": 14}
    assert [e["seed"] for e in total.failed("bad")] == [0, 7, 14, 21, 28]
    assert total.failed("crashed") == [{"seed": 13, "error": "RuntimeError: boom"}]
    assert total.failing_seeds == [0, 7, 13, 14, 21, 28]
    assert total.maxima == {"seed": 29.0}


def test_a_process_pool_gives_the_same_tally():
    one, two = run_seeds(RUN, 1, 40, 1), run_seeds(RUN, 1, 40, 2)
    assert (one.sums, one.kinds, one.failures, one.maxima) == \
        (two.sums, two.kinds, two.failures, two.maxima)


def test_main_prints_one_json_report_and_the_replay_line(capsys):
    assert main(RUN, ["--seeds", "6", "--start", "8", "--jobs", "1"]) == 1
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["seeds"] == 6 and report["first_seed"] == 8 and report["processes"] == 1
    assert report["runs"] == 5 and [e["seed"] for e in report["crashed"]] == [13]
    assert "time_s" in report
    assert err.strip() == "1 seed(s) failed; replay the first with scripts/toy.py --seed 13"
    assert main(RUN, ["--seeds", "3", "--start", "1", "--jobs", "1"]) == 0


def test_replay_prints_the_trace_and_the_summary(capsys):
    assert main(RUN, ["--seed", "7"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "trace of 7" and json.loads(lines[1]) == {"seed": 7}
    assert main(RUN, ["--seed", "8"]) == 0


def test_bad_counts_get_one_line(capsys):
    with pytest.raises(SystemExit):
        main(RUN, ["--seeds", "0"])
    assert "--seeds and --jobs must be at least 1" in capsys.readouterr().err

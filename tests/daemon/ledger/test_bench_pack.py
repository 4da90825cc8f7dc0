"""The packing benchmark runs, and packing pays for the job's large requests."""

from scripts.bench_pack import measure


def test_the_benchmark_runs_and_a_full_placement_packs_to_a_fraction():
    result = measure(8, 1)
    assert len(result["cases"]) == 3
    assert all(c["packed_bytes"] < c["plain_bytes"] for c in result["cases"])
    full = result["cases"][1]
    assert full["plain_bytes"] > 4 * result["cases"][0]["plain_bytes"]
    assert full["ratio"] > 3

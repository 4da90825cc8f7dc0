"""A volunteer that vanishes without `leave` is evicted from the membership once it has been
silent for the genesis' evict_after_s, and joins again when it comes back (real daemons)."""

from __future__ import annotations

from tests.e2e.cli import as_json, eventually, node_dir, ok, run


def test_a_silent_member_is_evicted_and_joins_again_when_back(tmp_path):
    tn = tmp_path / "tn"
    ok("testnet", "up", "-n", "5", "--dir", str(tn), "--seed", "11", "--param", "evict_after_s=10")
    try:
        victim = 4
        vid = as_json("status", "--data-dir", node_dir(tn, victim))["node_id"]
        assert vid in as_json("committees", "--data-dir", node_dir(tn, 0))["members"]
        ok("testnet", "kill", str(victim), "--dir", str(tn))

        def evicted():
            com = as_json("committees", "--data-dir", node_dir(tn, 0))
            return com["epoch"] >= 1 and vid not in com["members"] and com
        com = eventually(evicted, timeout=90, what="the silent member to be evicted")
        assert len(com["members"]) == 4  # the others stay
        assert ok("kv", "put", "after-evict", "x", "--data-dir", node_dir(tn, 1)).startswith("committed")

        ok("testnet", "restart", str(victim), "--dir", str(tn))
        eventually(lambda: vid in as_json("committees", "--data-dir", node_dir(tn, 0))["members"],
                   timeout=120, what="the returning node to join again")
    finally:
        run("testnet", "down", "--dir", str(tn))

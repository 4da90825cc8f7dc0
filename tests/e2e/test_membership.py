"""Membership over time on a real 5-node testnet: a volunteer leaves on purpose and comes
back (`novacron leave` / `join`), and one that vanishes is evicted once it has been silent
for the genesis' evict_after_s, then joins again when it returns."""

from __future__ import annotations

import pytest

from tests.e2e.cli import as_json, eventually, node_dir, ok, run


@pytest.fixture(scope="module")
def testnet(tmp_path_factory):
    tn = tmp_path_factory.mktemp("membership") / "tn"
    ok("testnet", "up", "-n", "5", "--dir", str(tn), "--seed", "11", "--param", "evict_after_s=10")
    yield tn
    run("testnet", "down", "--dir", str(tn))


def members(tn) -> list[str]:
    return as_json("committees", "--data-dir", node_dir(tn, 0))["members"]


def record(tn, node: str) -> dict | None:
    """``node``'s capability record as node 0 holds it, or None."""
    recs = as_json("capabilities", "--data-dir", node_dir(tn, 0))["records"]
    return next((r for r in recs if r["node_id"] == node), None)


def node_id(tn, i: int) -> str:
    return as_json("status", "--data-dir", node_dir(tn, i))["node_id"]


def test_a_volunteer_leaves_on_purpose_and_joins_again(testnet):
    me = node_id(testnet, 3)
    out = ok("leave", "--data-dir", node_dir(testnet, 3))
    assert out.startswith("left: taking no more tasks") and "directory: ok" in out
    assert ok("leave", "--data-dir", node_dir(testnet, 3)).startswith("this node has already left")
    # At once: its record offers no task slots (then, once it is out, the record goes).
    slots = eventually(lambda: record(testnet, me) and [record(testnet, me)["slots"]],
                       what="its record to offer no task slots")
    assert slots == [0] or record(testnet, me) is None
    eventually(lambda: me not in members(testnet), timeout=60, what="the member to be gone")
    st = as_json("status", "--data-dir", node_dir(testnet, 3))["services"]["consensus"]
    assert st["epochs"]["left"] and not st["epochs"]["joining"]  # it stays out by itself
    eventually(lambda: record(testnet, me) is None, timeout=60,
               what="its capability record to be pruned from the soft state")

    assert ok("join", "--data-dir", node_dir(testnet, 3)).startswith("joining again")
    eventually(lambda: me in members(testnet), timeout=90, what="the volunteer to be back")
    eventually(lambda: (record(testnet, me) or {}).get("slots", 0) > 0, timeout=60,
               what="its record, with task slots, to be back")


def test_a_silent_member_is_evicted_and_joins_again_when_back(testnet):
    victim = 4
    vid = node_id(testnet, victim)
    eventually(lambda: vid in members(testnet) and len(members(testnet)) == 5, timeout=60,
               what="all five to be members")
    ok("testnet", "kill", str(victim), "--dir", str(testnet))

    def evicted():
        com = as_json("committees", "--data-dir", node_dir(testnet, 0))
        return vid not in com["members"] and com
    com = eventually(evicted, timeout=90, what="the silent member to be evicted")
    assert len(com["members"]) == 4  # the others stay
    eventually(lambda: record(testnet, vid) is None, timeout=60,
               what="the evicted node's capability record to be pruned")
    put = ok("kv", "put", "after-evict", "x", "--data-dir", node_dir(testnet, 1))
    assert put.startswith("committed")

    ok("testnet", "restart", str(victim), "--dir", str(testnet))
    eventually(lambda: vid in members(testnet), timeout=120,
               what="the returning node to join again")
    eventually(lambda: record(testnet, vid) is not None, timeout=60,
               what="its capability record to be back")

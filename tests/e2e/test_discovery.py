"""Sparse bootstrap at a size where the view is really partial: 12 daemons, each given only
the seed's address (node0). Every node finds the others and says so, keeps a bounded view,
commits through committees it was never told the addresses of, and can leave."""

from __future__ import annotations

import pytest

from tests.e2e.cli import as_json, eventually, node_dir, ok, run

N = 12
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def testnet(tmp_path_factory):
    d = tmp_path_factory.mktemp("discovery") / "tn"
    ok("testnet", "up", "-n", str(N), "--dir", str(d), "--seed", "5", "--wait", "240",
       timeout=300)
    yield d
    run("testnet", "down", "--dir", str(d))


def p2p(testnet, i):
    return as_json("status", "--data-dir", node_dir(testnet, i))["services"]["p2p"]


def test_every_node_finds_the_network_from_one_seed_and_keeps_a_partial_view(testnet):
    def found():
        out = []
        for i in range(N):
            st = p2p(testnet, i)
            view = st["view"]
            if st["health"] != "ok" or view["known"] != N - 1 or view["view_connected"] < 8:
                return False
            out.append(st)
        return out
    statuses = eventually(found, timeout=90, what="every node to know all and fill its view")
    for st in statuses:
        assert st["view"]["view"] == 8  # 8 of the 11 others: a partial view, not a mesh
        assert st["connected"] <= st["view"]["max_connections"] + st["view"]["kept"]
    # The seed is not everyone's only link: non-seeds connect to many peers, not just node0.
    assert all(st["connected"] >= 8 for st in statuses[1:])
    peers = as_json("peers", "--data-dir", node_dir(testnet, 7))["peers"]
    assert sum(p["role"] == "view" and p["connected"] for p in peers) == 8


def test_committees_commit_and_a_value_put_on_one_node_reads_back_on_another(testnet):
    assert ok("kv", "put", "far", "away", "--data-dir", node_dir(testnet, N - 1)).startswith(
        "committed")
    assert ok("kv", "get", "far", "--data-dir", node_dir(testnet, 5)).strip() == "away"


def test_a_node_that_only_knew_the_seed_can_leave(testnet):
    out = ok("leave", "--data-dir", node_dir(testnet, N - 2))
    assert out.startswith("left: taking no more tasks") and "directory: ok" in out

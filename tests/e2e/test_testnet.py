"""Issue 7's end-to-end checks on a real 5-node local testnet, driven only through the CLI:
nodes join and form committees, commit requests, survive kill -9 of a committee member,
catch it up on restart, and shrug off a peer that sends garbage."""

from __future__ import annotations

import pytest
import trio

from daemon.runtime.pool import runtime_id
from tests.e2e.cli import as_json, eventually, node_dir, ok, run


@pytest.fixture(scope="module")
def testnet(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e") / "tn"
    ok("testnet", "up", "-n", "5", "--dir", str(d), "--seed", "7")
    yield d
    run("testnet", "down", "--dir", str(d))


def consensus(testnet, i):
    return as_json("status", "--data-dir", node_dir(testnet, i))["services"]["consensus"]


def test_nodes_see_each_others_capabilities(testnet):
    ids = {as_json("status", "--data-dir", node_dir(testnet, i))["node_id"] for i in range(5)}

    def all_seen():
        for i in range(5):
            recs = as_json("capabilities", "--data-dir", node_dir(testnet, i))["records"]
            if {r["node_id"] for r in recs} != ids:
                return False
        return True
    eventually(all_seen, what="every node to hold every capability record")
    rec = as_json("capabilities", "--data-dir", node_dir(testnet, 2))["records"][0]
    # The target, and the exact runtime that a task's replicas must share:
    assert rec["runtimes"][:2] == ["wasm32-wasi", f"wasm32-wasi@{runtime_id()}"]
    # and Python's, once this machine's interpreter cache is ready (tests never download it)
    python = rec["runtimes"][2:]
    assert python == [] or (len(python) == 2 and python[0] == "python"
                            and python[1].startswith("python@")), rec["runtimes"]
    assert rec["slots"] >= 1 and rec["self_reported"]
    assert rec["attestation_kind"] == "none"  # this machine has no TPM or TEE, and says so
    peers = as_json("peers", "--data-dir", node_dir(testnet, 0))["peers"]
    assert all(p["capabilities"] and p["capabilities"]["slots"] >= 1 for p in peers)


def test_each_node_given_one_seed_finds_and_connects_to_all_the_others(testnet):
    """`testnet up` gives each node only the seed's address (node0); discovery does the rest,
    and status says how far it got."""
    for i in range(1, 5):
        boot = (testnet / f"node{i}" / "node.toml").read_text()
        assert boot.count("/p2p/") == 1  # one bootstrap address
    def all_found():
        for i in range(5):
            p2p = as_json("status", "--data-dir", node_dir(testnet, i))["services"]["p2p"]
            view = p2p["view"]
            if not (p2p["health"] == "ok" and view["known"] == 4 and p2p["connected"] == 4
                    and view["view_connected"] == 4):
                return False
        return True
    eventually(all_found, what="every node to know and reach the four others")


def test_nodes_form_committees_and_commit(testnet):
    com = as_json("committees", "--data-dir", node_dir(testnet, 0))
    assert len(com["members"]) == 5
    shard0 = next(c for c in com["committees"] if c["shard"] == "shard0")
    assert len(shard0["members"]) == 4 and shard0["f"] == 1
    for i in range(5):  # every node, member or not, can commit through the committee
        out = ok("kv", "put", f"key{i}", f"value{i}", "--data-dir", node_dir(testnet, i))
        assert out.startswith("committed on shard 0")
    assert ok("kv", "get", "key3", "--data-dir", node_dir(testnet, 1)).strip() == "value3"


def test_kill9_of_a_member_then_restart_catches_up(testnet):
    com = as_json("committees", "--data-dir", node_dir(testnet, 0))
    shard0 = next(c for c in com["committees"] if c["shard"] == "shard0")["members"]
    names = {as_json("status", "--data-dir", node_dir(testnet, i))["node_id"]: i for i in range(5)}
    victim = names[shard0[1]]
    others = [i for i in range(5) if i != victim]
    ok("testnet", "kill", str(victim), "--dir", str(testnet))
    for k in range(5):
        ok("kv", "put", f"during{k}", "x", "--data-dir", node_dir(testnet, others[k % 4]))
    assert ok("kv", "get", "during4", "--data-dir", node_dir(testnet, others[0])).strip() == "x"
    ok("testnet", "restart", str(victim), "--dir", str(testnet))

    def caught_up():
        mine = next(r for r in consensus(testnet, victim)["replicas"] if r["shard"] == 0)
        ref = next(r for r in consensus(testnet, others[0])["replicas"] if r["shard"] == 0)
        return mine["executed"] >= ref["executed"] - 1 and mine["executed"] > 0
    eventually(caught_up, what="the restarted member to catch up")
    ok("kv", "put", "after", "restart", "--data-dir", node_dir(testnet, victim))


def test_a_peer_sending_garbage_is_counted_and_the_node_keeps_working(testnet):
    """A hostile peer (our own p2p host with a throwaway key) sends junk on the consensus
    protocol and a foreign protocol; node0 counts the faults and keeps committing."""
    import random

    from daemon.p2p import P2PConfig, P2PHost
    from protocol.identity import NodeIdentity

    target = as_json("peers", "--data-dir", node_dir(testnet, 0))["listen"][0]
    target_id = target.rsplit("/", 1)[1]

    async def attack():
        host = P2PHost(NodeIdentity(random.Random(99).randbytes(32)),
                       P2PConfig(listen=("/ip4/127.0.0.1/tcp/0",), bootstrap=(target,)),
                       random.Random(1))
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            with trio.fail_after(20):
                while target_id not in host.connected_peers():
                    await trio.sleep(0.05)
            for _ in range(5):
                host.send(target_id, "/novacron/pbft/2", b"\x00garbage, not an envelope")
            # Stay connected until node0 reports the faults (asked through its CLI).
            await trio.to_thread.run_sync(lambda: eventually(
                lambda: counted(host.node_id), what="node0 to count the attacker's faults"))
            nursery.cancel_scope.cancel()

    def counted(attacker):
        faults = as_json("status", "--data-dir", node_dir(testnet, 0))["services"]["p2p"]["faults"]
        return sum(faults.get(attacker, {}).values()) >= 5

    trio.run(attack)
    assert ok("kv", "put", "still", "alive", "--data-dir", node_dir(testnet, 0)).startswith("committed")


def test_a_new_node_joins_and_the_epoch_changes_without_losing_state(testnet):
    ok("kv", "put", "epoch0-key", "kept", "--data-dir", node_dir(testnet, 0))
    out = ok("testnet", "add", "--dir", str(testnet))
    assert out.startswith("started node5")

    def everyone_in_epoch_1():
        epochs = [as_json("committees", "--data-dir", node_dir(testnet, i))["epoch"] for i in range(6)]
        return all(e >= 1 for e in epochs)
    eventually(everyone_in_epoch_1, timeout=60, what="all six nodes to enter epoch 1")
    com = as_json("committees", "--data-dir", node_dir(testnet, 5))
    assert len(com["members"]) == 6
    # Committed state crossed the epoch boundary, and the new committee commits.
    assert ok("kv", "get", "epoch0-key", "--data-dir", node_dir(testnet, 5)).strip() == "kept"
    assert ok("kv", "put", "epoch1-key", "new", "--data-dir", node_dir(testnet, 5)).startswith("committed")

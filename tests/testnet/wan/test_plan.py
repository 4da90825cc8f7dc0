"""The address plan, the nftables text and partition parsing (pure)."""

from __future__ import annotations

import random

import pytest

from testnet.wan import nat, partition
from testnet.wan.plan import build, choose_natted, tag_for


def test_public_and_natted_nodes_get_their_own_networks():
    plan = build("abc123", 4, {2})
    pub, natted = plan.nodes[0], plan.nodes[2]
    assert (pub.ns, pub.ip, pub.public_ip, pub.router_ns) == (
        "ncwabc123-n0", "198.18.1.2", "198.18.1.2", None)
    assert (natted.ip, natted.public_ip, natted.gateway, natted.router_ns) == (
        "192.168.3.2", "198.18.3.2", "192.168.3.1", "ncwabc123-r2")
    assert plan.namespaces[-1] == "ncwabc123-core" and len(plan.namespaces) == 6
    assert len({n.public_ip for n in plan.nodes}) == 4
    assert all(len(ns) <= 15 + 10 for ns in plan.namespaces)  # short, readable names


def test_the_tag_follows_the_directory():
    assert tag_for("/a/b") == tag_for("/a/b") != tag_for("/a/c")


def test_nat_fraction_never_takes_a_seed_and_rounds():
    order = list(range(12))
    random.Random(4).shuffle(order)
    natted = choose_natted(12, 1 / 3, 1, order)
    assert len(natted) == 4 and 0 not in natted
    assert choose_natted(12, 0.0, 1, order) == set()
    with pytest.raises(ValueError, match="seed node"):
        choose_natted(4, 1.0, 1, [3, 0, 2, 1])
    with pytest.raises(ValueError, match="between 0 and 1"):
        choose_natted(4, 1.5, 1, [3, 0, 2, 1])


def test_node_rules_redirect_only_testnet_tcp_and_spare_the_relay():
    text = nat.node_rules(build("t", 2, set()).nodes[1])
    assert "meta mark 0x4e43 return" in text and "ip daddr 198.18.2.2 return" in text
    assert "198.18.0.0/15, 192.168.0.0/16 } meta l4proto tcp redirect to :7999" in text


def test_router_rules_masquerade_out_and_only_let_replies_in():
    node = build("t", 3, {1}).nodes[1]
    text = nat.router_rules(node)
    assert 'oifname "wan0" ip saddr 192.168.2.0/24 masquerade' in text
    assert "policy drop" in text and "ct state established,related accept" in text
    with pytest.raises(ValueError):
        nat.router_rules(build("t", 3, set()).nodes[0])


NAMES = [f"node{i}" for i in range(5)]


def test_partition_groups_by_name_or_index():
    assert partition.parse(["0,1", "/", "2,node3,4"], NAMES) == [
        ["node0", "node1"], ["node2", "node3", "node4"]]
    assert partition.parse(["3"], NAMES) == [["node3"], ["node0", "node1", "node2", "node4"]]
    assert partition.parse(["0,1/2,3/4"], NAMES) == [["node0", "node1"], ["node2", "node3"],
                                                     ["node4"]]


@pytest.mark.parametrize("words,message", [
    (["0,1", "/", "2"], "node3 is in no group"),
    (["0,1", "/", "1,2,3,4"], "node1 is in two groups"),
    (["0,9"], "no node '9'"),
    (["0,1", "/", ""], "empty group"),
    (["0,1,2,3,4"], "holds every node"),
])
def test_partition_mistakes_are_one_line(words, message):
    with pytest.raises(partition.PartitionError, match=message):
        partition.parse(words, NAMES)


def test_partition_rules_drop_both_ways_between_groups_only():
    text = partition.rules([["node0"], ["node1", "node2"]],
                           {"node0": "198.18.1.2", "node1": "198.18.2.2", "node2": "198.18.3.2"})
    assert "elements = { 198.18.2.2, 198.18.3.2 }" in text
    assert "ip saddr @g0 ip daddr @g1 drop" in text and "ip saddr @g1 ip daddr @g0 drop" in text
    assert "@g0 ip daddr @g0" not in text

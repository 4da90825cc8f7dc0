"""The simulator itself: determinism, faults, life cycle, invariants."""

import pytest

from testnet.sim import InvariantViolation, LinkFaults, Network, Simulation


class Gossip:
    """Tiny protocol for testing the simulator: flood every new number you hear once."""

    def __init__(self, name):
        self.name = name
        self.seen = set()
        self.persisted = set()

    def on_message(self, sim, src, msg):
        if msg not in self.seen:
            self.seen.add(msg)
            self.persisted.add(msg)
            sim.broadcast(self.name, msg)

    def on_tick(self, sim, now):
        pass

    def on_crash(self, sim):
        self.seen = set()

    def on_restart(self, sim, keep_state):
        self.seen = set(self.persisted) if keep_state else set()
        if not keep_state:
            self.persisted = set()


def run(seed, faults):
    sim = Simulation(seed, Network(faults))
    sim.keep_log = True
    nodes = {f"n{i}": Gossip(f"n{i}") for i in range(8)}
    for name, node in nodes.items():
        sim.add_node(name, node)
    for i in range(20):
        sim.send("n0", "n0", i)
    sim.run_for(5.0)
    return sim, nodes


def test_same_seed_same_run():
    faults = LinkFaults(drop=0.3, duplicate=0.2, min_delay=0.001, max_delay=0.2)
    a, _ = run(7, faults)
    b, _ = run(7, faults)
    assert a.log == b.log and a.stats == b.stats
    c, _ = run(8, faults)
    assert c.log != a.log


def test_faults_are_applied():
    sim, nodes = run(3, LinkFaults(drop=0.5, duplicate=0.5))
    assert sim.stats.dropped > 0 and sim.stats.duplicated > 0


def test_reliable_network_delivers_everything():
    sim, nodes = run(3, LinkFaults())
    assert all(n.seen == set(range(20)) for n in nodes.values())
    assert sim.stats.dropped == 0 and sim.stats.sent == sim.stats.delivered


def test_partition_and_heal():
    net = Network()
    sim = Simulation(1, net)
    nodes = {f"n{i}": Gossip(f"n{i}") for i in range(4)}
    for name, node in nodes.items():
        sim.add_node(name, node)
    net.partition({"n0", "n1"}, {"n2", "n3"})
    sim.send("n0", "n0", "x")
    sim.run_for(1.0)
    assert [bool(n.seen) for n in nodes.values()] == [True, True, False, False]
    net.heal()
    sim.send("n0", "n0", "y")
    sim.run_for(1.0)
    assert all("y" in n.seen for n in nodes.values())


def test_pause_buffers_and_crash_loses():
    sim = Simulation(2)
    nodes = {f"n{i}": Gossip(f"n{i}") for i in range(3)}
    for name, node in nodes.items():
        sim.add_node(name, node)
    sim.pause("n1")
    sim.crash("n2")
    sim.send("n0", "n0", "m")
    sim.run_for(1.0)
    assert nodes["n1"].seen == set() and nodes["n2"].seen == set()
    sim.resume("n1")
    sim.run_for(1.0)
    assert nodes["n1"].seen == {"m"}
    sim.restart("n2", keep_state=False)
    sim.run_for(1.0)
    assert nodes["n2"].seen == set()  # the message was lost while it was down


def test_invariant_violation_names_seed():
    sim = Simulation(42)
    node = Gossip("a")
    sim.add_node("a", node)
    sim.add_invariant(lambda s: "saw 13" if 13 in node.seen else None)
    sim.send("a", "a", 13)
    with pytest.raises(InvariantViolation, match=r"seed 42: .*saw 13.*Simulation\(seed=42\)"):
        sim.run_for(1.0)

"""The seeded in-process simulator shared by every many-node test.

- ``network``   -- the fault model: loss, duplication, delay (and so reordering), partitions.
- ``simulator`` -- virtual time, the event heap, node crash / restart / pause, invariants.

Protocol adapters (CRDT anti-entropy, PBFT replicas, churn) live beside this package in
``testnet`` and wrap the pure cores as ``Process`` objects.
"""

from testnet.sim.network import RELIABLE, LinkFaults, Network
from testnet.sim.simulator import InvariantViolation, NodeState, Process, Simulation, replayable

__all__ = ["RELIABLE", "InvariantViolation", "LinkFaults", "Network", "NodeState", "Process",
           "Simulation", "replayable"]

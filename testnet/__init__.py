"""The seeded in-process simulator and the local testnet launcher.

- ``sim``       -- the simulator: virtual time, faulty network, crash / restart, invariants.
- ``crdt_sim``  -- CRDT replicas as simulated nodes; ``run_convergence`` runs one seed.
"""

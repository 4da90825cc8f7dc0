"""The seeded in-process simulator, the simulations built on it, and the local testnet launcher.

- ``sim``       -- the simulator: virtual time, faulty network, crash / restart, invariants.
- ``crdt_sim``  -- CRDT replicas as simulated nodes; ``run_convergence`` runs one seed.
- ``pbft_sim``  -- PBFT replicas, Byzantine behaviours, scenarios and the safety checker.
- ``job_sim``   -- the whole job protocol: real PBFT replicas of the real ledger, the daemon's
                   member planner and tallies, Byzantine workers, churn, epoch hand-over.
- ``seeds``     -- the seed-range runner of the simulator scripts (``scripts/sim_*.py``):
                   one command line, a process pool, merged JSON totals, replay by seed.
- ``traces``    -- host availability traces: synthetic from Failure Trace Archive fits, or read
                   from the archive's tabular format.
- ``forecast``  -- fit-then-score protocol for availability forecasts (Brier, AUC, reliability).
- ``churn``     -- task placement under churn: random, on-fraction, ours, known law, and a
                   hindsight oracle.
- ``memnet``    -- an in-process network of hosts, for running the daemon's trio services under
                   ``trio.testing.MockClock`` (virtual time, partitions).
- ``local``     -- a real local testnet of daemon processes on 127.0.0.1, with fault injection.
- ``interrupt`` -- SIGINT and SIGTERM stop a bench, or the launcher's wait for a network,
                   through its ``finally`` blocks, which take its testnet down.
- ``cpu``       -- a process's CPU seconds from ``/proc``, for benches and tests that measure
                   what a daemon, a worker or the WAN relay costs.
"""

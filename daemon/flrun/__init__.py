"""Federated training runs driven by the submitter's node (I/O; the pure core is ``daemon.fl``).

Modules:

- ``stage``   -- an FL job's files read once from its directory: task files, shards, test set,
                 model (bounded, checked, the user's script read but never run here).
- ``store``   -- runs, their round in flight and their history in the node's SQLite.
- ``driver``  -- the round loop: plan, submit, wait for certificates, aggregate, evaluate,
                 record; resumes a run after a restart.
- ``service`` -- ``fl.*`` control methods and the driver's ports over the node (its jobs
                 service, soft-state links, and its own Python sandbox for evaluation).
"""

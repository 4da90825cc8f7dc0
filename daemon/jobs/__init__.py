"""Jobs: what a researcher submits, and this node's part in running it (the trio side).

- ``spec``      -- the job spec (TOML), checked field by field with one-line errors.
- ``submitter`` -- submitting jobs, gathering outputs, votes and certificates.
- ``pins``      -- the blobs a submitter keeps while its jobs run (module, inputs, checkpoints).
- ``split``     -- a large job split across shards: the plan, the whole id, the combined view (pure).
- ``wholes``    -- the whole jobs this node split: their record and submitting their parts.
- ``results``   -- the result directory ``novacron result`` writes and ``verify`` reads.
- ``member``    -- as a committee member: placing tasks, sending offers and result votes.
- ``worker``    -- running offered tasks in the sandbox and reporting their results.
- ``held``      -- the tasks a worker accepted, kept until they end, so a crash resumes them.
- ``service``   -- ``JobsService``: the three roles wired to committees, blobs and the socket.

The ledger they all act on (hard state, pure) is ``daemon.ledger``; its operations are
``protocol.messages.ledger``.
"""

from daemon.jobs.spec import JobSpec, SpecError, load_spec

__all__ = ["JobSpec", "SpecError", "load_spec"]

"""Hard state: the job ledger that shard committees replicate, and what it decides. Pure.

Nothing here imports trio, libp2p or a service; time comes in as ledger ``Tick`` operations
(or a ``now`` argument), so every replica decides alike and the simulator can run it.

- ``state``       -- ``JobLedger``: the replicated state machine of jobs, tasks and replicas
                     (its operations are ``protocol.messages.ledger``; one handler each).
- ``records``     -- jobs, tasks, task replicas, and their states (``JobState``,
                     ``TaskState``, ``ReplicaOutcome``), the agreed ``Answer``.
- ``events``      -- what changed, for the shell to act on (``Offered``, ``Accepted``, ...).
- ``placing``     -- placement for the ledger: the proposer's and the checker's side of one rule
                     (imported late by the ledger: it brings numpy).
- ``reputation``  -- workers' records (agreed, disagreed, timeouts) and spot checks.
- ``shard``       -- ``ShardMachine`` (ledger + key-value store) and ``LedgerShards``, the
                     ledger as the committees service's shard application (factory, batcher,
                     per-shard clock ticks).
- ``certificate`` -- result certificates: statements, votes, and checking them offline.
"""

from daemon.ledger.certificate import (CertificateError, ResultCertificate, sign_vote, statement,
                                       verify_certificate)
from daemon.ledger.events import (Accepted, JobEnded, JobSubmitted, LedgerEvent, Offered,
                                  ReplicaFailed, TaskFailed, VotesAsked)
from daemon.ledger.records import (Answer, Job, JobState, ReplicaOutcome, Task, TaskReplica,
                                   TaskState, job_id)
from daemon.ledger.shard import LedgerShards, ShardMachine
from daemon.ledger.state import JobLedger

__all__ = ["Accepted", "Answer", "CertificateError", "Job", "JobEnded", "JobLedger", "JobState",
           "JobSubmitted", "LedgerEvent", "LedgerShards", "Offered", "ReplicaFailed", "ReplicaOutcome",
           "ResultCertificate", "ShardMachine", "Task", "TaskFailed", "TaskReplica", "TaskState",
           "VotesAsked", "job_id", "sign_vote", "statement", "verify_certificate"]

"""Sharded PBFT committees for NovaCron's hard state. Pure: no I/O, no clock, no global random.

Replica (read ``replica`` first):

- ``replica``      -- the facade: ``Replica.receive(envelope) / tick(now) -> [Action]``; normal
                      case, batching, execution, checkpoints, restart.
- ``viewchange``   -- checking view changes, computing the new view, the view-change protocol.
- ``recovery``     -- stable checkpoints, state transfer and catch-up of lagging replicas.
- ``batches``      -- how batch bodies travel: pre-prepares by reference, batches fetched by
                      digest, requests a backup forwards to the primary.
- ``timers``       -- when to suspect the primary, send status, re-send; pacing by the
                      committee's pace and measured round trips (``retune``).
- ``replica_base`` -- the fields and methods the five share, typed (``ReplicaBase``).
- ``log``          -- the message log between the watermarks; batch digests.
- ``checkpoint``   -- checkpoint collection, stable checkpoints and their proofs.
- ``statetransfer``-- fetching a stable checkpoint's snapshot in chunks.
- ``persist``      -- the durable records a replica restarts from.
- ``actions``      -- what a replica asks its shell to do, and the ordering contract.
- ``config``       -- ``ReplicaConfig``: committee and protocol knobs.
- ``sizes``        -- the largest message of each kind a configuration can build (all under
                      the transport's frame cap: batches by bytes, view changes by digest).
- ``health``       -- a committee's health (ok / degraded / stalled, with the reason) from
                      what a replica observes.
- ``crypto``       -- the Signer/Verifier seam: real Ed25519 envelopes, or the simulator's MACs.
- ``statemachine`` -- the replicated state machine interface, the service wrapper
                      (de-duplication table), a key-value machine for tests.
- ``client``       -- a PBFT client (f+1 matching replies, paced and backed-off re-sends).

Proofs and committees:

- ``quorum``       -- quorum certificates: compact, checkable offline with the committee list.
- ``evidence``     -- equivocation evidence and blame from conflicting certificates.
- ``committee``    -- committee size from the exact hypergeometric tail; sortition, with a cap
                      on the seats one node holds.
- ``mesh``         -- the bounded-degree mesh a large committee's broadcasts travel on.
- ``pow``          -- proof of work on a node key (the price of an identity).
- ``directory``    -- the directory committee's state machine: joins, leaves, epochs.
- ``reconfig``     -- handing a shard's state to the next epoch's committee.
- ``chain``        -- the epoch chain: from the genesis to any epoch's committees, offline.
- ``statedelta``   -- a state sent as its difference from the one before (epoch notices).
"""

from consensus.actions import (
    Action, Broadcast, Committed, EpochEnded, Misbehaviour, Persist, Send, StateInstalled,
    ViewEntered,
)
from consensus.client import Client
from consensus.committee import (
    DIRECTORY_SHARD, MAX_SEATS, assign_committees, committee_size, failure_probability, max_faulty,
    seat_cap, sortition,
)
from consensus.config import ReplicaConfig
from consensus.crypto import Ed25519Signer, Ed25519Verifier, MacSigner, MacVerifier
from consensus.directory import DirectoryMachine, DirectoryParams, EpochConfig
from consensus.evidence import Equivocation, VoteConflict, conflicting_qcs
from consensus.mesh import MESH_ABOVE, MESH_DEGREE, Mesh, build_mesh, mesh_for
from consensus.pow import check_pow, solve_pow
from consensus.quorum import make_qc, quorum_size, verify_qc, vote_bytes
from consensus.reconfig import Handoff, HandoffFetch, next_genesis, verify_handoff
from consensus.replica import Replica
from consensus.statemachine import ClientRequest, KeyValueMachine, StateMachine

__all__ = [
    "DIRECTORY_SHARD", "MAX_SEATS", "MESH_ABOVE", "MESH_DEGREE", "Action", "Broadcast", "Client",
    "ClientRequest", "Committed",
    "DirectoryMachine", "DirectoryParams", "Ed25519Signer", "Ed25519Verifier", "EpochConfig",
    "EpochEnded", "Equivocation", "Handoff", "HandoffFetch", "KeyValueMachine", "MacSigner",
    "MacVerifier", "Mesh", "Misbehaviour", "Persist", "Replica", "ReplicaConfig", "Send",
    "StateInstalled", "StateMachine", "ViewEntered", "VoteConflict", "assign_committees",
    "check_pow", "committee_size", "conflicting_qcs", "failure_probability", "make_qc",
    "max_faulty", "build_mesh", "mesh_for",
    "next_genesis", "quorum_size", "seat_cap", "solve_pow", "sortition", "verify_handoff",
    "verify_qc", "vote_bytes",
]

"""What the PBFT replica's parts share: the typed base of ``Replica`` and its four mixins.

``consensus.replica.Replica`` is the normal case (requests, the three phases, execution);
``consensus.viewchange.ViewChanges``, ``consensus.recovery.Recovery``,
``consensus.batches.Batches`` and ``consensus.timers.Timers`` are mixins holding the view-change
protocol, checkpoints / state transfer and catch-up, how batch bodies travel (by reference,
fetched), and the timers (suspicion, status, pacing). All five work on
one set of fields, which ``Replica.__init__`` sets; ``ReplicaBase`` declares them, with their
types, and the methods each part calls on another, so that each module type-checks on its own
(``mypy --strict``). The declarations have no effect at run time: the fields are annotations
only, and the method signatures exist only for the type checker. The checked view change
(``CheckedViewChange``) lives here too, since the replica's fields hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from consensus.actions import Action
from consensus.checkpoint import CheckpointTracker, Stable
from consensus.config import ReplicaConfig
from consensus.crypto import Signer, Verifier
from consensus.log import MessageLog, Slot
from consensus.statemachine import ClientRequest, Service
from consensus.statetransfer import StateFetch
from protocol.envelope import Envelope
from protocol.messages.pbft import NewView, PrePrepare, PrePrepareRefs, QuorumCert

@dataclass(frozen=True, slots=True)
class Cert:
    """One prepared certificate, checked."""

    view: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class CheckedViewChange:
    """A view change whose every proof was checked (``viewchange.check_view_change``)."""

    sender: int
    view: int
    stable_seq: int
    stable_digest: bytes
    proof: tuple[bytes, ...]
    certs: dict[int, Cert]
    raw: bytes


class ReplicaBase:
    cfg: ReplicaConfig
    signer: Signer
    verifier: Verifier
    me: int
    service: Service
    genesis_digest: bytes
    now: float
    view: int
    view_changing: bool
    log: MessageLog
    last_executed: int
    ckpt: CheckpointTracker
    pending: dict[bytes, ClientRequest]
    inflight: set[tuple[bytes, int]]
    next_seq: int
    timeout: float
    progress_at: float | None
    vcs: dict[int, CheckedViewChange]
    my_vc: bytes | None
    vc_sent_at: float
    vc_resend_wait: float
    nv_wait_since: float | None
    nv_raw: bytes | None
    nv_vcs: tuple[bytes, ...]
    nv_pending: Envelope | None
    vc_fetch_at: float
    vc_fetch_wait: float
    vc_kept: dict[bytes, CheckedViewChange]
    view_change_causes: dict[str, int]
    last_view_change: str
    _displaced: dict[bytes, tuple[bytes, ...]]
    _batch_asked: dict[tuple[int, bytes], tuple[float, int]]
    last_status: float
    _head_seen: tuple[int, bool, int, int]
    _head_at: float
    restarted: bool
    peer_views: dict[int, tuple[int, bool, float]]
    _status_answered: dict[int, float]
    _status_peers: dict[int, tuple[tuple[int, int], float, float, float]]
    fetch: StateFetch | None
    end_seq: int | None
    end_reported: bool
    _hold: bool
    _proposing: bool
    view_changes_in_a_row: int
    pace: float | None
    _calm_at: float
    _req_cache: dict[bytes, ClientRequest]
    _raw_by_ref: dict[bytes, bytes]
    _refs_waiting: dict[int, tuple[int, Envelope, PrePrepareRefs, float]]
    _ordered: set[tuple[bytes, int]]
    _pending_since: dict[tuple[bytes, int], float]
    _forwarded: set[tuple[bytes, int]]
    refs_rebuilt: int
    refs_fetched: int
    _out: list[Action]
    short_of_quorum: bool
    _ticked_at: float
    timeouts_excused: int
    _lagging_since: float | None
    _status_wait: float
    _status_head: tuple[int, bool, int, int] | None
    _handlers: dict[type, Callable[[Any, int, Any, Envelope], None]]

    if TYPE_CHECKING:
        # Defined by ``Replica``:
        @property
        def primary(self) -> int: ...

        @property
        def is_primary(self) -> bool: ...

        @property
        def stable(self) -> Stable: ...

        def _seal(self, msg: Any) -> bytes: ...

        def _broadcast(self, msg: Any) -> bytes: ...

        def _send(self, to: int, raw: bytes) -> None: ...

        def _persist_slot(self, s: Slot) -> None: ...

        def _persist_view(self) -> None: ...

        def _decode_batch(self, raws: tuple[bytes, ...]) -> tuple[ClientRequest, ...]: ...

        def _propose(self) -> None: ...

        def _vote_prepare(self, s: Slot) -> None: ...

        def _check_prepared(self, s: Slot) -> None: ...

        def _execute_ready(self) -> None: ...

        def _qc(self, s: Slot) -> QuorumCert | None: ...

        def _on_preprepare(self, sender: int, m: PrePrepare, env: Envelope) -> None: ...

        def _known_batch(self, s: Slot, digest: bytes) -> tuple[ClientRequest, ...] | None: ...

        def _remember_displaced(self, digest: bytes, raws: tuple[bytes, ...]) -> None: ...

        # Defined by ``Timers``:
        @property
        def resend_interval(self) -> float: ...

        def _carrying_on(self) -> tuple[int, int]: ...

        # Defined by ``Batches``:
        def _ask_refs(self) -> None: ...

        def _forward_unordered(self) -> None: ...

        def _fetch_batches(self) -> None: ...

        # Defined by ``Recovery``:
        def _poll_fetch(self) -> None: ...

        def _has_work(self) -> bool: ...

        def _adopt_stable(self, st: Stable) -> None: ...

        def _add_checkpoint_vote(self, sender: int, seq: int, digest: bytes, raw: bytes
                                 ) -> None: ...

        # Defined by ``ViewChanges``:
        def _start_view_change(self, view: int, why: str = "") -> None: ...

        def _after_view_change_input(self) -> None: ...

        def _vc_resend_targets(self) -> list[int]: ...

        def _on_new_view(self, sender: int, m: NewView, env: Envelope) -> None: ...

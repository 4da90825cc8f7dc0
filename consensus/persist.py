"""The replica's durable records: what must survive a crash so it never votes twice differently.

The store is a flat map of short ASCII keys to bytes (the daemon keeps it in one SQLite table);
``Persist`` actions update it, and ``load`` reads it back at restart.

- ``view``    -- [view, view_changing]: after announcing a view change the replica never
                 again accepts messages of an older view.
- ``stable``  -- [seq, digest, proof, snapshot]: the last stable checkpoint and its state.
- ``slot:N``  -- one sequence number's accepted pre-prepare (so it never prepares another
                 batch in the same view), its highest prepared certificate (which every later
                 view change must report), and whether it committed (so a restart re-executes
                 it locally) with the quorum's votes.
- ``newview`` -- [view, raw, view changes]: the NEW-VIEW this replica sent or accepted, with
                 the view changes it names (re-sent identically after a restart).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from consensus.checkpoint import Stable
from consensus.log import Slot
from protocol.canonical import packb, unpackb
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.messages.pbft import PreparedCert

VIEW = "view"
STABLE = "stable"
NEWVIEW = "newview"


def slot_key(seq: int) -> str:
    return f"slot:{seq}"


def encode_view(view: int, changing: bool) -> bytes:
    return packb([view, changing], maps=False)


def encode_newview(view: int, raw: bytes, view_changes: tuple[bytes, ...]) -> bytes:
    return packb([view, raw, list(view_changes)], maps=False)


def encode_stable(stable: Stable, snapshot: bytes) -> bytes:
    return packb([stable.seq, stable.digest, list(stable.proof), snapshot], maps=False)


def encode_cert(c: PreparedCert | None) -> list[Any] | None:
    return None if c is None else [c.view, c.seq, c.digest, c.signers, list(c.signatures)]


def decode_cert(v: Any) -> PreparedCert | None:
    return None if v is None else PreparedCert(int(v[0]), int(v[1]), bytes(v[2]), bytes(v[3]),
                                                tuple(bytes(x) for x in v[4]))


def encode_slot(s: Slot) -> bytes:
    votes = sorted(s.qc_votes.items()) if s.qc_votes else None
    batch = [r.raw for r in s.requests] if s.requests is not None and not s.pp_raw else None
    return packb([s.pp_view, s.digest, s.pp_raw, s.prepared_view, encode_cert(s.prepared_cert),
                  s.committed_view if s.committed else -1, votes, s.qc_checked, batch,
                  s.pp_vote], maps=False)


@dataclass
class Recovered:
    view: int = 0
    view_changing: bool = False
    stable: Stable | None = None
    snapshot: bytes | None = None
    slots: dict[int, Slot] = field(default_factory=dict)
    newview: tuple[int, bytes, tuple[bytes, ...]] | None = None
    batches: dict[int, tuple[bytes, ...] | None] = field(default_factory=dict)
    """Request envelopes of batches known without a pre-prepare (new view, commit proof)."""


def load(stored: Mapping[str, bytes]) -> Recovered:
    """Read a store written by ``Persist`` actions. It is our own data: damage is a local error."""
    out = Recovered()
    try:
        for key, value in stored.items():
            v = unpackb(value, max_size=1 << 40, max_items=1 << 24)
            if key == VIEW:
                out.view, out.view_changing = int(v[0]), bool(v[1])
            elif key == STABLE:
                out.stable = Stable(v[0], v[1], tuple(v[2]))
                out.snapshot = v[3]
            elif key == NEWVIEW:
                out.newview = (v[0], v[1], tuple(v[2]))
            elif key.startswith("slot:"):
                seq = int(key[5:])
                s = Slot(seq)
                s.pp_view, s.digest, s.pp_raw, s.prepared_view = v[0], v[1], v[2], v[3]
                s.prepared_cert = decode_cert(v[4])
                s.pp_vote = v[9]
                if v[5] >= 0:
                    s.committed, s.committed_view = True, v[5]
                    s.qc_votes = dict((int(i), sig) for i, sig in v[6]) if v[6] else None
                    s.qc_checked = bool(v[7])
                out.batches[seq] = tuple(v[8]) if v[8] is not None else None
                out.slots[seq] = s
    except (TypeError, ValueError, IndexError, KeyError, RemoteProtocolError) as err:
        raise LocalProtocolError(f"replica store is damaged: {err}") from None
    return out

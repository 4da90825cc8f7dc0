"""Who sends a shard's hand-over notice to whom, and when a new member asks for it: pure.

At an epoch's end every member of a shard's old committee holds the same ``HandoffNotice``
(the final checkpoint and its proof, 2f+1 signed checkpoints: ~20 KB at 160 members), and each
sent it to every member of the new committee: each new member took in one copy per old member
and was dialled by each (163 copies, 3 MB, at 1,000 nodes; the largest cost an epoch had, ~30
KB/s a node in ``scripts/sim_scale.py``). One valid copy is all it needs. Now old member ``i``
sends to the new members ``j`` with ``(j - i) mod n_old < FANOUT``, so each new member hears
from ``FANOUT`` distinct old members; one that has no valid copy ``ASK_AFTER_S`` after it
entered the epoch asks the old members one at a time (``HandoffWant``), as a node that lacks an
epoch notice asks for it (``epoch_sync``). Old committees are drawn at random, so the members
that would withhold a copy cannot choose whom they withhold it from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.committees.peer_pace import PeerPace

FANOUT = 3
"""Old members each new member hears the hand-over from."""
ASK_AFTER_S = 5.0
"""A new member with no valid hand-over this long asks an old member for it, and the next one
after twice as long, and so on up to ``ASK_EVERY_MAX_S`` (an old committee that never ends
its epoch is not asked every 5 s for ever)."""
ASK_EVERY_MAX_S = 60.0
ANSWER_EVERY_S = 1.0
"""An old member answers a peer's asks at most once a second."""


def handoff_targets(me: bytes, old: Sequence[bytes], new: Sequence[bytes]) -> list[bytes]:
    """The new members an old member ``me`` sends its hand-over notice to."""
    if me not in old:
        return []
    i, n = old.index(me), len(old)
    return [pk for j, pk in enumerate(new) if (j - i) % n < FANOUT]


@dataclass
class _Want:
    since: float
    """When we needed it, then when we last asked."""
    old: tuple[bytes, ...]
    """The old committee."""
    index: int
    """Our position in the new committee: the old members ``index``, ``index - 1``, ... were
    to send it to us; we ask the ones after."""
    asked: int = 0


@dataclass
class HandoffAsks:
    wants: dict[tuple[int, int], _Want] = field(default_factory=dict)
    """(shard, ended epoch) -> what we need to ask for its hand-over, as a new member."""
    answered: PeerPace = field(default_factory=lambda: PeerPace(ANSWER_EVERY_S))
    """When we last answered each peer's ask."""

    def want(self, key: tuple[int, int], now: float, old: Sequence[bytes], index: int) -> None:
        if old:
            self.wants.setdefault(key, _Want(now, tuple(old), index))

    def got(self, key: tuple[int, int]) -> None:
        self.wants.pop(key, None)

    def due(self, now: float) -> list[tuple[tuple[int, int], bytes]]:
        """The old member to ask now for each hand-over still missing ``ASK_AFTER_S`` after we
        needed it, then after each doubling wait: one at a time, in turn."""
        out = []
        for key, w in self.wants.items():
            if now - w.since < min(ASK_AFTER_S * 2 ** w.asked, ASK_EVERY_MAX_S):
                continue
            out.append((key, w.old[(w.index + 1 + w.asked) % len(w.old)]))
            w.asked += 1
            w.since = now
        return out

    def drop_before(self, ended: int) -> None:
        """Forget hand-overs of epochs that ended before ``ended``: their committees moved on."""
        for key in [k for k in self.wants if k[1] < ended]:
            del self.wants[key]

    def may_answer(self, peer: str, now: float) -> bool:
        """Answer ``peer``'s ask now? At most once every ``ANSWER_EVERY_S``."""
        return self.answered.allow(peer, now)

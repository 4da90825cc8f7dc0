"""A tiny lossless in-memory network for replica tests (the simulator does the faulty one)."""

from __future__ import annotations

from typing import Any

from crdt import CrdtReplica
from crdt.codec import Interner, encode_object, pack_payload
from crdt.causal import Causal
from protocol.messages.crdt import CrdtDelta, CrdtObject


def connect(replicas: dict[str, CrdtReplica], a: str, b: str, now_ms: int) -> list[tuple[str, str, Any]]:
    """Both sides see the connection: returns the messages in flight ``(src, dst, msg)``."""
    return ([(a, dst, m) for dst, m in replicas[a].on_connect(b, now_ms)]
            + [(b, dst, m) for dst, m in replicas[b].on_connect(a, now_ms)])


def pump(replicas: dict[str, CrdtReplica], now_ms: int, inflight: list[tuple[str, str, Any]] = (),
         rounds: int = 20, step_ms: int = 100, drop: set[str] = frozenset()) -> int:
    """Tick everyone and deliver every message (except to ``drop``) until nothing moves;
    returns the time reached."""
    queue = list(inflight)
    for _ in range(rounds):
        now_ms += step_ms
        for name, r in replicas.items():
            queue += [(name, dst, m) for dst, m in r.tick(now_ms)]
        if not queue:
            break
        while queue:
            src, dst, msg = queue.pop(0)
            if dst in drop or dst not in replicas:
                continue
            queue += [(dst, d2, m2) for d2, m2 in replicas[dst].on_message(src, msg, now_ms)]
    return now_ms


def delta_message(name: str, obj: Causal, session: int = 77, seq: int = 1,
                  signed: bool = True) -> CrdtDelta:
    """Hand-build a one-object delta message (how a misbehaving node would)."""
    rep = Interner()
    data = pack_payload(encode_object(obj, rep, signed=signed))
    return CrdtDelta(session, seq, seq, tuple(rep.table), (CrdtObject(name, data),))

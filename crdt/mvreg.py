"""Multi-value register (``DotFun[value]``): concurrent writes are all kept and all shown.

Use it where a conflict must be *seen* rather than silently resolved (two nodes setting a
job's state differently): ``values()`` returns every write not overwritten by a later one, and
the next ``write`` (which covers every value it saw) resolves the conflict.
"""

from __future__ import annotations

from typing import Any

from crdt.causal import MV_LEAF, Causal, Kind, Patch
from crdt.hlc import Writer
from crdt.values import pack_value, unpack_value


class MVRegister(Causal):
    KIND = Kind("mvreg", 0, MV_LEAF, lambda: MVRegister())
    __slots__ = ()

    def values(self) -> list[Any]:
        """Every concurrent value, in dot order (empty if never written or cleared)."""
        return [unpack_value(e[2]) for e in self.store]

    def raw_values(self) -> list[bytes]:
        return [e[2] for e in self.store]

    @property
    def conflicted(self) -> bool:
        return len(self.store) > 1

    def p_write(self, w: Writer, value: Any) -> Patch:
        data = pack_value(value)
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()), (), (data,))

    def p_clear(self, w: Writer) -> Patch:
        dot = (w.replica, self.ctx.next_counter(w.replica))
        return self.patch(dot, self.dots_under(()))

    def write(self, w: Writer, value: Any) -> "MVRegister":
        return self.commit(self.p_write(w, value))

    def clear(self, w: Writer) -> "MVRegister":
        return self.commit(self.p_clear(w))


__all__ = ["MVRegister"]

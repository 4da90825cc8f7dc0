"""Availability from periodic probes: a host x probe matrix of 1 (answered) / 0 (did not).

Several public availability traces were collected this way rather than as events: the
Microsoft desktop study (every host pinged hourly for 35 days), Overnet and SETI@home
measurements. ``probe_traces`` turns such a matrix into ``HostTrace`` intervals so that the
same readers, simulator and benchmark serve them; ``format_event_trace`` then writes them in
the archive's format.

Convention (the archive's): a run of answered probes ``a..b`` is one session
``[t_a, t_{b+1})``. The host answered at ``t_b`` and not at ``t_{b+1}``; it left somewhere in
between, and the probe is the earliest it can be known to be gone. A session still running at
the last probe ends at ``t_last + step`` (right-censored there); one running at the first
probe starts at ``t_0`` (its true start is unknown).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from testnet.traces.trace import HostTrace


def probe_traces(
    matrix: np.ndarray, *, t0: float, step_s: float, kind: str, names: Sequence[str] | None = None,
) -> list[HostTrace]:
    """One trace per row of ``matrix`` (0/1, hosts x probes at ``t0 + i * step_s``)."""
    m = np.asarray(matrix)
    if m.ndim != 2:
        raise ValueError("a probe matrix is 2-D: hosts x probes")
    if not np.isin(m, (0, 1)).all():
        raise ValueError("probe results must be 0 or 1")
    if step_s <= 0:
        raise ValueError("the probe step must be positive")
    if names is not None and len(names) != m.shape[0]:
        raise ValueError("one name per host row")
    padded = np.zeros((m.shape[0], m.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = m
    edges = np.diff(padded, axis=1)
    out = []
    for i in range(m.shape[0]):
        starts = np.flatnonzero(edges[i] == 1)
        ends = np.flatnonzero(edges[i] == -1)
        up = np.stack([t0 + starts * step_s, t0 + ends * step_s], axis=1).astype(float)
        out.append(HostTrace(str(i), kind, up, name=names[i] if names is not None else str(i)))
    return out

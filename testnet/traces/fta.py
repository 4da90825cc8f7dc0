"""Read and write the Failure Trace Archive's tabular ``event_trace`` format.

The archive (Kondo, Javadi, Iosup, Epema, CCGrid 2010) publishes each platform as tables;
the one that matters here is ``event_trace.tab``, one row per availability event:

    event_id  component_id  node_id  platform_id  node_name  event_type
    event_start_time  event_stop_time  event_end_reason

``event_type`` 1 means the component was available (up) over ``[start, stop)``, 0 that it was
unavailable; times are seconds since the Unix epoch. The first line is a header, sometimes
prefixed with ``#``; when present it names the columns, so files with extra or reordered
columns read too. ``node.tab`` carries each node's ``timezone`` (seconds from GMT); pass it as
``tz_offsets`` if the generator-style local time matters to you (the predictor does not need it).

What real files do, and what the reader does about it:

- Padding: published files mix tabs and runs of spaces between fields (and some copies were
  re-saved with spaces only). No field of the format contains blanks, so any run of
  whitespace separates fields.
- Strictness: a row must have exactly the header's number of fields, integer ``event_type``
  0 or 1, finite times with ``stop >= start``. Anything else raises ``TraceFormatError`` naming
  the line; a stray extra field is an error, not a row silently shifted by one column.
- Zero-length failures: a down event with ``start == stop`` between two up rows is a real
  departure (a crash and an immediate reboot). The two up intervals stay two sessions
  (touching, not merged); a zero-length failure inside an up row splits it.
- Identity: hosts are keyed by ``node_id``. Names are not unique (the LANL trace reuses one
  name for several nodes), so ``HostTrace.host_id`` is the node id and the name is kept in
  ``HostTrace.name``.
- Hosts with no up interval at all (only down rows) are reported in ``EventTrace.down_only``
  and left out of ``EventTrace.hosts``: there is nothing to forecast for them.

Reading is pure (text in, traces out) so real traces can replace the synthetic ones anywhere
the simulator takes a list of ``HostTrace``; ``load_event_trace`` is the one-line file wrapper.
"""

from __future__ import annotations

import gzip
import lzma
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from testnet.traces.trace import HostTrace

COLUMNS = (
    "event_id", "component_id", "node_id", "platform_id", "node_name", "event_type",
    "event_start_time", "event_stop_time", "event_end_reason",
)
REQUIRED = ("node_id", "event_type", "event_start_time", "event_stop_time")
EVENT_UP = 1
EVENT_DOWN = 0
MAX_LINE_CHARS = 4096
"""No legitimate row comes close; a longer line is a wrong file, refused before it is split."""


class TraceFormatError(ValueError):
    """A trace file line that is not FTA ``event_trace`` data; the message names the line."""


@dataclass(frozen=True, eq=False)
class EventTrace:
    """What a file held: the hosts to simulate, and what was set aside and why."""

    hosts: tuple[HostTrace, ...]
    """Nodes with at least one up interval, ordered by node id."""
    down_only: tuple[str, ...] = ()
    """Node ids whose rows are all down (or zero-length up): never available in the trace."""
    rows: int = 0
    zero_length_failures: int = 0
    """Zero-length down events that separate two sessions (kept as departures)."""
    shared_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Names used by more than one node id -> those node ids."""

    @property
    def span(self) -> tuple[float, float]:
        """First and last instant any host is up (0, 0 with no host)."""
        if not self.hosts:
            return (0.0, 0.0)
        return (
            min(float(h.up[0, 0]) for h in self.hosts),
            max(float(h.up[-1, 1]) for h in self.hosts),
        )


@dataclass
class _Node:
    name: str
    platform: str
    ups: list[tuple[float, float]] = field(default_factory=list)
    cuts: list[float] = field(default_factory=list)


def _sessions(ups: list[tuple[float, float]], cuts: list[float]) -> np.ndarray:
    """Sorted, disjoint sessions: overlapping or touching up rows merge (archives split one
    session over several rows), except where a zero-length failure sits between them; a
    failure strictly inside an up interval splits it."""
    cut_set = set(cuts)
    merged: list[list[float]] = []
    for s, e in sorted(ups):
        if merged and (s < merged[-1][1] or (s == merged[-1][1] and s not in cut_set)):
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    out: list[tuple[float, float]] = []
    inner = sorted(cut_set)
    for s, e in merged:
        lo = int(np.searchsorted(inner, s, side="right"))
        hi = int(np.searchsorted(inner, e, side="left"))
        points = [s, *inner[lo:hi], e]
        out.extend((a, b) for a, b in zip(points, points[1:]) if b > a)
    return np.asarray(out, dtype=float).reshape(-1, 2)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_event_trace(
    lines: Iterable[str],
    *,
    component_id: str | None = None,
    tz_offsets: Mapping[str, int] | None = None,
) -> EventTrace:
    """Hosts (one per node id) from the lines of an ``event_trace.tab``; see the module
    docstring for what is tolerated and what is refused.

    Only ``event_type == 1`` rows define up time; everything else is down. With
    ``component_id`` only that component's rows are used (some platforms trace several).
    """
    columns: tuple[str, ...] = COLUMNS
    nodes: dict[str, _Node] = {}
    rows = 0
    zero_downs = 0
    first = True
    for lineno, raw in enumerate(lines, start=1):
        if len(raw) > MAX_LINE_CHARS:
            raise TraceFormatError(f"line {lineno}: {len(raw)} characters; not an event trace row")
        fields = raw.split()
        if not fields:
            continue
        commented = fields[0].startswith("#")
        if commented:
            fields = [f for f in [fields[0][1:], *fields[1:]] if f]
        if first and fields and not _is_number(fields[0]):
            first = False
            columns = tuple(f.lower() for f in fields)
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise TraceFormatError(f"line {lineno}: header lacks columns {missing}")
            if len(set(columns)) != len(columns):
                raise TraceFormatError(f"line {lineno}: header repeats a column")
            continue
        first = False
        if commented:
            continue
        if len(fields) != len(columns):
            raise TraceFormatError(
                f"line {lineno}: expected {len(columns)} fields, got {len(fields)}"
            )
        row = dict(zip(columns, fields))
        if component_id is not None and row.get("component_id") != component_id:
            continue
        rows += 1
        try:
            event_type = int(row["event_type"])
        except ValueError:
            raise TraceFormatError(
                f"line {lineno}: event_type {row['event_type']!r} is not an integer"
            ) from None
        if event_type not in (EVENT_UP, EVENT_DOWN):
            raise TraceFormatError(f"line {lineno}: event_type {event_type} is neither 0 (down) nor 1 (up)")
        try:
            start = float(row["event_start_time"])
            stop = float(row["event_stop_time"])
        except ValueError:
            raise TraceFormatError(
                f"line {lineno}: event times {row['event_start_time']!r}, "
                f"{row['event_stop_time']!r} are not numbers"
            ) from None
        if not (math.isfinite(start) and math.isfinite(stop)) or stop < start:
            raise TraceFormatError(f"line {lineno}: bad interval [{start}, {stop}]")
        node_id = row["node_id"]
        node = nodes.get(node_id)
        if node is None:
            node = nodes[node_id] = _Node(row.get("node_name", node_id), row.get("platform_id", "?"))
        if event_type == EVENT_UP:
            if stop > start:
                node.ups.append((start, stop))
        elif stop == start:
            node.cuts.append(start)

    def order(node_id: str) -> tuple[int, float, str]:
        return (0, float(node_id), node_id) if _is_number(node_id) else (1, 0.0, node_id)

    tz = tz_offsets or {}
    hosts: list[HostTrace] = []
    down_only: list[str] = []
    by_name: dict[str, list[str]] = {}
    for node_id in sorted(nodes, key=order):
        node = nodes[node_id]
        by_name.setdefault(node.name, []).append(node_id)
        up = _sessions(node.ups, node.cuts)
        if not up.size:
            down_only.append(node_id)
            continue
        zero_downs += int(np.sum(up[1:, 0] == up[:-1, 1]))
        hosts.append(HostTrace(
            node_id, f"fta:{node.platform}", up, int(tz.get(node_id, 0)), name=node.name,
        ))
    shared = {name: tuple(ids) for name, ids in by_name.items() if len(ids) > 1}
    return EventTrace(tuple(hosts), tuple(down_only), rows, zero_downs, shared)


def load_event_trace(path: str | Path, **kwargs: object) -> EventTrace:
    """``parse_event_trace`` on a file (the archive's ``event_trace.tab``; ``.gz``, ``.xz`` too)."""
    name = str(path)
    opener = gzip.open if name.endswith(".gz") else lzma.open if name.endswith(".xz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            return parse_event_trace(fh, **kwargs)  # type: ignore[arg-type]
    except UnicodeDecodeError as err:
        raise TraceFormatError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except (gzip.BadGzipFile, lzma.LZMAError, EOFError) as err:
        raise TraceFormatError(f"{path}: not a complete compressed file ({err})") from None


def format_event_trace(traces: Iterable[HostTrace], *, platform_id: int = 0) -> str:
    """The archive's format for ``traces``: up rows and the down gaps between them (a
    zero-length down row where two sessions touch, so the departure survives a round trip).

    Node ids are the traces' positions; names are their ``host_id``. Lets synthetic traces be
    exported, inspected with the archive's own tools, and read back.
    """
    out = ["# " + "\t".join(COLUMNS)]
    event_id = 0
    for node_id, trace in enumerate(traces):
        prev_end: float | None = None
        for s, e in trace.up:
            if prev_end is not None and s >= prev_end:
                out.append(_row(event_id, node_id, platform_id, trace.host_id, EVENT_DOWN, prev_end, s))
                event_id += 1
            out.append(_row(event_id, node_id, platform_id, trace.host_id, EVENT_UP, s, e))
            event_id += 1
            prev_end = e
    return "\n".join(out) + "\n"


def _row(event_id: int, node_id: int, platform_id: int, name: str, kind: int, s: float, e: float) -> str:
    fields = (event_id, 0, node_id, platform_id, name, kind, repr(float(s)), repr(float(e)), 0)
    return "\t".join(str(f) for f in fields)

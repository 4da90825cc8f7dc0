"""Read and write the Failure Trace Archive's tabular ``event_trace`` format.

The archive (fta.scem.westernsydney.edu.au) publishes each platform as tab-separated tables;
the one that matters here is ``event_trace.tab``, one row per availability event:

    event_id  component_id  node_id  platform_id  node_name  event_type
    event_start_time  event_stop_time  event_end_reason

``event_type`` 1 means the component was available (up) over ``[start, stop)``, 0 that it was
unavailable; times are seconds since the Unix epoch. The first line is a header, sometimes
prefixed with ``#``; when present it names the columns, so files with extra or reordered
columns read too. ``node.tab`` carries each node's ``timezone`` (seconds from GMT); pass it as
``tz_offsets`` if the generator-style local time matters to you (the predictor does not need it).

Reading is pure (text in, traces out) so real traces can replace the synthetic ones anywhere
the simulator takes a list of ``HostTrace``; ``load_event_trace`` is the one-line file wrapper.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from testnet.traces.trace import HostTrace

COLUMNS = (
    "event_id", "component_id", "node_id", "platform_id", "node_name", "event_type",
    "event_start_time", "event_stop_time", "event_end_reason",
)
EVENT_UP = 1
EVENT_DOWN = 0


class TraceFormatError(ValueError):
    """A trace file line that is not FTA ``event_trace`` data; the message names the line."""


def _merge(intervals: list[tuple[float, float]]) -> np.ndarray:
    """Sort and merge overlapping or touching intervals (archives contain both)."""
    intervals.sort()
    merged: list[list[float]] = []
    for s, e in intervals:
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return np.asarray(merged, dtype=float).reshape(-1, 2)


def parse_event_trace(
    lines: Iterable[str],
    *,
    component_id: str | None = None,
    tz_offsets: Mapping[str, int] | None = None,
) -> list[HostTrace]:
    """Traces (one per node, ordered by node id) from the lines of an ``event_trace.tab``.

    Only ``event_type == 1`` rows define up time; everything else is down. With
    ``component_id`` only that component's rows are used (some platforms trace several).
    """
    columns: tuple[str, ...] = COLUMNS
    ups: dict[str, list[tuple[float, float]]] = {}
    names: dict[str, str] = {}
    platforms: dict[str, str] = {}
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        body = line.lstrip("#").strip()
        # Tab-separated as published; some copies were re-saved with spaces.
        fields = [f.strip() for f in body.split("\t")] if "\t" in body else body.split()
        if lineno == 1 and not fields[0].lstrip("-").isdigit():
            columns = tuple(f.strip().lower() for f in fields)
            missing = {"node_id", "event_type", "event_start_time", "event_stop_time"} - set(columns)
            if missing:
                raise TraceFormatError(f"line 1: header lacks columns {sorted(missing)}")
            continue
        if line.startswith("#"):
            continue
        if len(fields) < len(columns):
            raise TraceFormatError(
                f"line {lineno}: expected {len(columns)} tab-separated fields, got {len(fields)}"
            )
        row = dict(zip(columns, fields))
        if component_id is not None and row.get("component_id") != component_id:
            continue
        try:
            event_type = int(float(row["event_type"]))
            start = float(row["event_start_time"])
            stop = float(row["event_stop_time"])
        except ValueError as err:
            raise TraceFormatError(f"line {lineno}: {err}") from None
        if not (np.isfinite(start) and np.isfinite(stop)) or stop < start:
            raise TraceFormatError(f"line {lineno}: bad interval [{start}, {stop}]")
        node = row["node_id"]
        names.setdefault(node, row.get("node_name", node))
        platforms.setdefault(node, row.get("platform_id", "?"))
        bucket = ups.setdefault(node, [])
        if event_type == EVENT_UP and stop > start:
            bucket.append((start, stop))

    def order(node: str) -> tuple[int, str]:
        return (int(node), node) if node.lstrip("-").isdigit() else (0, node)

    tz = tz_offsets or {}
    return [
        HostTrace(names[node], f"fta:{platforms[node]}", _merge(ups[node]), int(tz.get(node, 0)))
        for node in sorted(ups, key=order)
    ]


def load_event_trace(path: str | Path, **kwargs: object) -> list[HostTrace]:
    """``parse_event_trace`` on a file (the archive's ``event_trace.tab``)."""
    with open(path, encoding="utf-8") as fh:
        return parse_event_trace(fh, **kwargs)  # type: ignore[arg-type]


def format_event_trace(traces: Iterable[HostTrace], *, platform_id: int = 0) -> str:
    """The archive's format for ``traces``: up rows and the down gaps between them.

    Lets synthetic traces be exported, inspected with the archive's own tools, and read back.
    """
    out = ["# " + "\t".join(COLUMNS)]
    event_id = 0
    for node_id, trace in enumerate(traces):
        prev_end: float | None = None
        for s, e in trace.up:
            if prev_end is not None and s > prev_end:
                out.append(_row(event_id, node_id, platform_id, trace.host_id, EVENT_DOWN, prev_end, s))
                event_id += 1
            out.append(_row(event_id, node_id, platform_id, trace.host_id, EVENT_UP, s, e))
            event_id += 1
            prev_end = e
    return "\n".join(out) + "\n"


def _row(event_id: int, node_id: int, platform_id: int, name: str, kind: int, s: float, e: float) -> str:
    fields = (event_id, 0, node_id, platform_id, name, kind, repr(float(s)), repr(float(e)), 0)
    return "\t".join(str(f) for f in fields)

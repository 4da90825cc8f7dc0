"""Availability traces for the simulator: synthetic (seeded) or read from the archive.

- ``trace``    -- ``HostTrace``: one host's up intervals, with the oracle's queries.
- ``generate`` -- ``generate_traces``: hosts drawn from published Failure Trace Archive fits
  (Microsoft99, Notre Dame Condor, Overnet) plus diurnal office desktops and servers.
- ``fta``      -- read and write the archive's tabular ``event_trace`` format (``EventTrace``:
  the hosts, and the nodes set aside as never up).
"""

from testnet.traces.fta import EventTrace, TraceFormatError, format_event_trace, load_event_trace, parse_event_trace
from testnet.traces.generate import DEFAULT_MIX, EPOCH_MONDAY, FTA_CLASSES, generate_traces
from testnet.traces.trace import HostTrace

__all__ = [
    "DEFAULT_MIX",
    "EPOCH_MONDAY",
    "EventTrace",
    "FTA_CLASSES",
    "HostTrace",
    "TraceFormatError",
    "format_event_trace",
    "generate_traces",
    "load_event_trace",
    "parse_event_trace",
]

"""A node's capability record: what it can run, and how much to trust what it says.

Everything here is self-reported soft state, except ``attestation``, whose evidence a verifier
can check (``daemon.attest``). ``availability`` is the node's availability summary
(``daemon.sched``). Both are carried as free-form msgpack and validated by their owners.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from protocol.schema import MaxItems, message
from protocol.types import U16, U32, U64, Name, NodeIdText, Text, TimestampMs


@message("capability.announce", 1)
@dataclass(frozen=True, slots=True)
class CapabilityAnnounce:
    node_id: NodeIdText
    software_version: Name
    cores: U16
    memory_mb: U32
    runtimes: Annotated[tuple[Name, ...], MaxItems(16)]
    listen_addrs: Annotated[tuple[Text, ...], MaxItems(8)]
    attestation: Any
    availability: Any
    slots: U16
    """Tasks it runs at once: its volunteered share of cores."""
    load: U16
    """Per-mille of its task slots in use (0-1000)."""
    domain: Name
    """Failure domain: replicas of a task go to different domains (an operator tag, or the
    node itself when unset)."""
    updated_ms: TimestampMs
    generation: U64
    """Bumped at every change, so a newer record wins even if clocks disagree."""

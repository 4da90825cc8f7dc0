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
    instance: U64 = 0
    """Random for each start of the daemon (its soft-state session): two instances of one
    node live at once are two daemons holding its key (``daemon.softstate.twins``); 0 in
    records from before instances were announced."""
    started_ms: TimestampMs = 0
    """When the writing daemon started (its own clock): of two daemons holding one key, the
    later steps aside."""
    rivals: Annotated[tuple[U64, ...], MaxItems(4)] = ()
    """Instances of other daemons with this key that the writer has seen and outranks (it
    started first): a record naming an instance proves the writer was alive after that
    instance started, with no clock to compare, so that instance steps aside."""

"""The firmware's TCG event log, parsed and replayed to explain quoted PCR values.

A quote proves what the PCRs hold; the event log says what was measured into them. Replaying
the log (PCR := H(PCR || digest) for every event) and getting the quoted values shows the log
is complete and untampered for those PCRs, so its entries (firmware, boot loader, Secure Boot
state) can be trusted as far as the quote is.

Format: the crypto-agile log of the TCG PC Client Platform Firmware Profile (what Linux exposes
in ``/sys/kernel/security/tpm0/binary_bios_measurements``). It starts with one SHA-1-format
``TCG_PCClientPCREvent`` whose data is the ``TCG_EfiSpecIDEvent`` ("Spec ID Event03") listing
the digest algorithms and sizes; every later entry is a ``TCG_PCR_EVENT2``:

    u32 pcrIndex, u32 eventType, u32 digestCount, {u16 algId, digest}..., u32 eventSize, event

All integers little-endian. ``EV_NO_ACTION`` events are not extended; a "StartupLocality"
``EV_NO_ACTION`` event sets PCR 0's initial value. PCRs 17-22 (dynamic launch) start as all
ones, the others as zeros. Older SHA-1-only (TPM 1.2 format) logs are rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.attest.bytereader import ByteReader
from daemon.attest.tpm.structures import HASH_SIZES, digest
from protocol.errors import MalformedMessage

EV_NO_ACTION = 0x00000003
SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
STARTUP_LOCALITY_SIGNATURE = b"StartupLocality\x00"
MAX_EVENTS = 20000
MAX_EVENT_DATA = 64 * 1024
PCR_COUNT = 24


@dataclass(frozen=True, slots=True)
class LogEvent:
    pcr: int
    event_type: int
    digests: tuple[tuple[int, bytes], ...]
    data: bytes

    def digest_for(self, alg: int) -> bytes | None:
        return next((d for a, d in self.digests if a == alg), None)


@dataclass(frozen=True, slots=True)
class EventLog:
    algorithms: tuple[tuple[int, int], ...]
    """(algorithm id, digest size) from the Spec ID event."""
    events: tuple[LogEvent, ...]


def parse_event_log(data: bytes) -> EventLog:
    r = ByteReader(data, "TCG event log", big_endian=False)
    r.u32("pcrIndex")
    if r.u32("eventType") != EV_NO_ACTION:
        raise r.fail("first event is not the Spec ID event (EV_NO_ACTION)")
    r.take(20, "SHA-1 digest")
    spec = ByteReader(r.sized(4, "Spec ID event", 4096), "Spec ID event", big_endian=False)
    if spec.take(16, "signature") != SPEC_ID_SIGNATURE:
        raise MalformedMessage("TCG event log: not a crypto-agile log (no 'Spec ID Event03'); "
                               "SHA-1-only logs are not supported")
    spec.u32("platformClass")
    spec.take(4, "version, errata, uintnSize")
    count = spec.u32("numberOfAlgorithms")
    if not 0 < count <= 8:
        raise spec.fail(f"{count} algorithms")
    algorithms = tuple((spec.u16("algorithmId"), spec.u16("digestSize")) for _ in range(count))
    sizes = dict(algorithms)
    events: list[LogEvent] = []
    while r.remaining:
        if r.remaining < 8 or r.data[r.pos:r.pos + 4] == b"\xff\xff\xff\xff":
            break  # padding after the last event (logs copied out of ACPI tables)
        if len(events) >= MAX_EVENTS:
            raise r.fail(f"more than {MAX_EVENTS} events")
        pcr = r.u32("pcrIndex")
        event_type = r.u32("eventType")
        n = r.u32("digest count")
        if n > len(sizes):
            raise r.fail(f"event has {n} digests, the log declares {len(sizes)} algorithms")
        digests = []
        for _ in range(n):
            alg = r.u16("digest algorithm")
            if alg not in sizes:
                raise r.fail(f"digest algorithm 0x{alg:04x} not declared in the Spec ID event")
            digests.append((alg, r.take(sizes[alg], "digest")))
        data_bytes = r.sized(4, "event data", MAX_EVENT_DATA)
        if pcr >= PCR_COUNT:
            raise r.fail(f"event for PCR {pcr}")
        events.append(LogEvent(pcr, event_type, tuple(digests), data_bytes))
    return EventLog(algorithms, tuple(events))


def replay(log: EventLog, alg: int) -> dict[int, bytes]:
    """The PCR values of bank ``alg`` that the log's events produce, for every PCR it touches."""
    size = HASH_SIZES[alg]
    if alg not in dict(log.algorithms):
        raise MalformedMessage(f"TCG event log has no digests for algorithm 0x{alg:04x}")
    values: dict[int, bytes] = {}

    def initial(pcr: int) -> bytes:
        return b"\xff" * size if 17 <= pcr <= 22 else bytes(size)

    for event in log.events:
        if event.event_type == EV_NO_ACTION:
            if (event.pcr == 0 and event.data.startswith(STARTUP_LOCALITY_SIGNATURE)
                    and len(event.data) > len(STARTUP_LOCALITY_SIGNATURE) and 0 not in values):
                values[0] = bytes(size - 1) + event.data[len(STARTUP_LOCALITY_SIGNATURE):][:1]
            continue
        d = event.digest_for(alg)
        if d is None:
            raise MalformedMessage(f"TCG event log: an event for PCR {event.pcr} lacks a "
                                   f"0x{alg:04x} digest")
        values[event.pcr] = digest(alg, values.get(event.pcr, initial(event.pcr)) + d)
    return values


"""Collecting TEE evidence through configfs-tsm, Linux 6.7+'s unified report interface.

A report is requested by creating a directory under ``/sys/kernel/config/tsm/report``, writing
the 64 bytes of report data to its ``inblob``, and reading ``outblob`` (the SEV-SNP
attestation report or the TDX quote), ``auxblob`` (SEV-SNP: the host's certificate table) and
``provider``. ``generation`` counts writes to the entry: if it moved by more than our one
write, someone else wrote to the same entry in between and the blob may not answer our data.
The entry is removed afterwards.

This is I/O and runs only in a confidential VM; its parsing half (``sevsnp``, ``tdx``) is
tested with byte fixtures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from daemon.attest.binding import tee_report_data
from daemon.attest.detect import TSM_REPORT_DIR
from daemon.attest.evidence import MAX_TDX_QUOTE, Evidence, SnpEvidence, TdxEvidence
from daemon.attest.probe import FsProbe
from daemon.attest.sevsnp import parse_cert_table
from daemon.errors import DaemonError
from protocol.errors import MalformedMessage


class TsmError(DaemonError):
    """configfs-tsm did not give a report; the message says at which step and why."""


@dataclass(frozen=True, slots=True)
class TsmReport:
    provider: str
    outblob: bytes
    auxblob: bytes | None


def _read(path: Path, limit: int = MAX_TDX_QUOTE) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except FileNotFoundError:
        raise TsmError(f"{path.name} missing in {path.parent}: not a configfs-tsm entry") from None
    except OSError as err:
        raise TsmError(f"reading {path}: {err.strerror}") from None


def request_report(probe: FsProbe, report_data: bytes, entry_name: str) -> TsmReport:
    entry = probe.path(TSM_REPORT_DIR) / entry_name
    try:
        os.mkdir(entry)
    except OSError as err:
        raise TsmError(f"cannot create {entry}: {err.strerror}") from None
    try:
        before = int(_read(entry / "generation", 64).strip() or b"-1")
        try:
            with open(entry / "inblob", "wb") as f:
                f.write(report_data)
        except OSError as err:
            raise TsmError(f"writing {entry / 'inblob'}: {err.strerror}") from None
        outblob = _read(entry / "outblob")
        auxblob = _read(entry / "auxblob") if (entry / "auxblob").exists() else None
        provider = _read(entry / "provider", 64).decode("ascii", "replace").strip()
        after = int(_read(entry / "generation", 64).strip() or b"-1")
        if after != before + 1:
            raise TsmError("the report entry was written by someone else meanwhile; try again")
        return TsmReport(provider, outblob, auxblob or None)
    except ValueError:
        raise TsmError(f"{entry / 'generation'} is not a number") from None
    finally:
        try:
            os.rmdir(entry)
        except OSError:
            pass


def tee_evidence(probe: FsProbe, nonce: bytes, node_public_key: bytes,
                 entry_name: str) -> Evidence:
    """Evidence for ``nonce`` from whichever TSM provider this VM has."""
    report = request_report(probe, tee_report_data(nonce, node_public_key), entry_name)
    if report.provider == "sev_guest":
        certs: dict[str, bytes] = {}
        if report.auxblob:
            try:
                certs = parse_cert_table(report.auxblob)
            except MalformedMessage as err:
                raise TsmError(f"SEV-SNP certificate table from the host: {err}") from None
        signer = certs.get("vcek") or certs.get("vlek")
        chain = tuple(certs[n] for n in ("ask", "ark") if n in certs)
        return SnpEvidence(nonce, report.outblob, signer, chain)
    if report.provider == "tdx_guest":
        return TdxEvidence(nonce, report.outblob)
    raise TsmError(f"provider {report.provider!r}: NovaCron cannot verify its evidence "
                   "(supported: sev_guest, tdx_guest)")

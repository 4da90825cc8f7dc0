"""Attestation evidence as it travels: what a node sends a verifier, and the verifier's challenge.

Three kinds, each bound to the verifier's nonce and the node key (see ``binding``):

- ``TpmEvidence``: a TPM 2.0 quote (``TPMS_ATTEST`` + ``TPMT_SIGNATURE``) by the node's
  attestation key (AK), the PCR values it covers, the AK and endorsement key (EK) public areas,
  the EK certificate (and any intermediates) from the TPM's NV storage, the firmware event log
  where readable, and the secret recovered by credential activation when the challenge held one.
- ``SnpEvidence``: an AMD SEV-SNP ``ATTESTATION_REPORT`` and the VCEK (+ ASK, ARK) certificates.
- ``TdxEvidence``: an Intel TDX DCAP quote (v4); its PCK certificate chain travels inside.

``to_wire()`` gives msgpack-ready primitives; ``from_wire()`` validates untrusted input with
size caps and raises only ``MalformedMessage``. Field *contents* (is this a valid quote?) are
the verifier's business, not the decoder's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Union

from daemon.attest.binding import NONCE_SIZE
from daemon.attest.tpm.credential import Credential
from daemon.attest.tpm.structures import HASH_SIZES
from daemon.attest.wire import (as_map, bytes_list, get_bytes, get_int, get_list, get_opt_bytes,
                                get_str, packb, unpackb)
from protocol.errors import MalformedMessage
from protocol.identity import PUBLIC_KEY_SIZE

MAX_TPM_BLOB = 1024
MAX_CERT = 8192
MAX_CHAIN = 4
MAX_EVENT_LOG = 256 * 1024
MAX_TDX_QUOTE = 32 * 1024
SNP_REPORT_SIZE = 0x4A0
MAX_BUNDLE = 512 * 1024


class EvidenceKind(str, Enum):
    NONE = "none"
    TPM2 = "tpm2"
    SEV_SNP = "sev-snp"
    TDX = "tdx"


@dataclass(frozen=True, slots=True)
class TpmEvidence:
    nonce: bytes
    attest: bytes
    signature: bytes
    pcr_alg: int
    pcrs: tuple[tuple[int, bytes], ...]
    """(PCR index, value) in ascending index order, all from bank ``pcr_alg``."""
    ak_public: bytes
    ek_public: bytes
    ek_certificate: bytes | None = None
    ek_chain: tuple[bytes, ...] = ()
    event_log: bytes | None = None
    activated_secret: bytes | None = None

    kind = EvidenceKind.TPM2

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "nonce": self.nonce, "attest": self.attest,
                "signature": self.signature, "pcr_alg": self.pcr_alg,
                "pcrs": [[i, v] for i, v in self.pcrs], "ak_public": self.ak_public,
                "ek_public": self.ek_public, "ek_certificate": self.ek_certificate,
                "ek_chain": list(self.ek_chain), "event_log": self.event_log,
                "activated_secret": self.activated_secret}

    @classmethod
    def from_wire(cls, obj: Any) -> "TpmEvidence":
        w = "tpm evidence"
        m = as_map(obj, w, {"kind", "nonce", "attest", "signature", "pcr_alg", "pcrs",
                            "ak_public", "ek_public"},
                   {"ek_certificate", "ek_chain", "event_log", "activated_secret"})
        pcr_alg = get_int(m, "pcr_alg", w, 0, 0xFFFF)
        if pcr_alg not in HASH_SIZES:
            raise MalformedMessage(f"{w}.pcr_alg: unsupported hash algorithm 0x{pcr_alg:04x}")
        pcrs: list[tuple[int, bytes]] = []
        for i, item in enumerate(get_list(m, "pcrs", w, 24)):
            if (not isinstance(item, (list, tuple)) or len(item) != 2
                    or not isinstance(item[0], int) or isinstance(item[0], bool)
                    or not isinstance(item[1], bytes)):
                raise MalformedMessage(f"{w}.pcrs[{i}]: expected [index, value]")
            index, value = item
            if not 0 <= index < 24 or (pcrs and index <= pcrs[-1][0]):
                raise MalformedMessage(f"{w}.pcrs[{i}]: index {index} out of range or order")
            if len(value) != HASH_SIZES[pcr_alg]:
                raise MalformedMessage(f"{w}.pcrs[{i}]: value is {len(value)} bytes, the "
                                       f"bank's digests are {HASH_SIZES[pcr_alg]}")
            pcrs.append((index, value))
        return cls(nonce=get_bytes(m, "nonce", w, NONCE_SIZE, exact=NONCE_SIZE),
                   attest=get_bytes(m, "attest", w, MAX_TPM_BLOB),
                   signature=get_bytes(m, "signature", w, MAX_TPM_BLOB),
                   pcr_alg=pcr_alg, pcrs=tuple(pcrs),
                   ak_public=get_bytes(m, "ak_public", w, MAX_TPM_BLOB),
                   ek_public=get_bytes(m, "ek_public", w, MAX_TPM_BLOB),
                   ek_certificate=get_opt_bytes(m, "ek_certificate", w, MAX_CERT),
                   ek_chain=(bytes_list(m, "ek_chain", w, MAX_CHAIN, MAX_CERT)
                             if m.get("ek_chain") is not None else ()),
                   event_log=get_opt_bytes(m, "event_log", w, MAX_EVENT_LOG),
                   activated_secret=get_opt_bytes(m, "activated_secret", w, 64))


@dataclass(frozen=True, slots=True)
class SnpEvidence:
    nonce: bytes
    report: bytes
    vcek: bytes | None = None
    chain: tuple[bytes, ...] = ()
    """ASK then ARK (DER), when the host supplied them."""

    kind = EvidenceKind.SEV_SNP

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "nonce": self.nonce, "report": self.report,
                "vcek": self.vcek, "chain": list(self.chain)}

    @classmethod
    def from_wire(cls, obj: Any) -> "SnpEvidence":
        w = "sev-snp evidence"
        m = as_map(obj, w, {"kind", "nonce", "report"}, {"vcek", "chain"})
        return cls(nonce=get_bytes(m, "nonce", w, NONCE_SIZE, exact=NONCE_SIZE),
                   report=get_bytes(m, "report", w, SNP_REPORT_SIZE, exact=SNP_REPORT_SIZE),
                   vcek=get_opt_bytes(m, "vcek", w, MAX_CERT),
                   chain=(bytes_list(m, "chain", w, MAX_CHAIN, MAX_CERT)
                          if m.get("chain") is not None else ()))


@dataclass(frozen=True, slots=True)
class TdxEvidence:
    nonce: bytes
    quote: bytes

    kind = EvidenceKind.TDX

    def to_wire(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "nonce": self.nonce, "quote": self.quote}

    @classmethod
    def from_wire(cls, obj: Any) -> "TdxEvidence":
        w = "tdx evidence"
        m = as_map(obj, w, {"kind", "nonce", "quote"})
        return cls(nonce=get_bytes(m, "nonce", w, NONCE_SIZE, exact=NONCE_SIZE),
                   quote=get_bytes(m, "quote", w, MAX_TDX_QUOTE))


Evidence = Union[TpmEvidence, SnpEvidence, TdxEvidence]
_BY_KIND: dict[str, Any] = {EvidenceKind.TPM2.value: TpmEvidence,
                            EvidenceKind.SEV_SNP.value: SnpEvidence,
                            EvidenceKind.TDX.value: TdxEvidence}


def evidence_from_wire(obj: Any) -> Evidence:
    if not isinstance(obj, Mapping) or "kind" not in obj:
        raise MalformedMessage("evidence: expected a map with a 'kind'")
    kind = obj["kind"]
    if not isinstance(kind, str) or kind not in _BY_KIND:
        raise MalformedMessage(f"evidence: unknown kind {str(kind)[:40]!r}")
    result: Evidence = _BY_KIND[kind].from_wire(obj)
    return result


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a verifier sends: a fresh nonce, and for a TPM whose AK it already knows, a
    credential only that TPM can activate (see ``tpm.credential``)."""

    nonce: bytes
    credential: Credential | None = None

    def to_wire(self) -> dict[str, Any]:
        cred = None if self.credential is None else {
            "id_object": self.credential.id_object,
            "encrypted_seed": self.credential.encrypted_seed}
        return {"nonce": self.nonce, "credential": cred}

    @classmethod
    def from_wire(cls, obj: Any) -> "Challenge":
        w = "attestation challenge"
        m = as_map(obj, w, {"nonce"}, {"credential"})
        cred = None
        if m.get("credential") is not None:
            c = as_map(m["credential"], f"{w}.credential", {"id_object", "encrypted_seed"})
            cred = Credential(get_bytes(c, "id_object", w, MAX_TPM_BLOB),
                              get_bytes(c, "encrypted_seed", w, MAX_TPM_BLOB))
        return cls(get_bytes(m, "nonce", w, NONCE_SIZE, exact=NONCE_SIZE), cred)


BUNDLE_FORMAT = "novacron-attestation-evidence-v1"


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    """The file ``novacron attest --out`` writes: evidence plus the key it claims to bind."""

    node_public_key: bytes
    evidence: Evidence

    def encode(self) -> bytes:
        return packb({"format": BUNDLE_FORMAT, "node_public_key": self.node_public_key,
                      "evidence": self.evidence.to_wire()})

    @classmethod
    def decode(cls, data: bytes) -> "EvidenceBundle":
        obj = unpackb(data, "evidence bundle", MAX_BUNDLE)
        m = as_map(obj, "evidence bundle", {"format", "node_public_key", "evidence"})
        if get_str(m, "format", "evidence bundle", 64) != BUNDLE_FORMAT:
            raise MalformedMessage(f"evidence bundle: format is not {BUNDLE_FORMAT!r}")
        return cls(get_bytes(m, "node_public_key", "evidence bundle", PUBLIC_KEY_SIZE,
                             exact=PUBLIC_KEY_SIZE),
                   evidence_from_wire(m["evidence"]))

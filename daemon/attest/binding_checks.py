"""Turning "the evidence's bound data" into the ``nonce`` and ``node-key`` checks.

Shared by the TPM, SEV-SNP and TDX verifiers. The evidence names the nonce it answers; that
claim is only used to *explain* a failure (replay versus wrong key), never to pass a check:
passing requires the bound data to equal what the verifier computes from the nonce it issued.
"""

from __future__ import annotations

from collections.abc import Callable

from daemon.attest.result import Check, failed, passed, unchecked
from protocol.attestation import AttestationLevel
from protocol.identity import node_id_from_public_key


def short(data: bytes) -> str:
    return data[:8].hex() + "…"


def binding_checks(bound: bytes, compute: Callable[[bytes, bytes], bytes], field: str,
                   evidence_nonce: bytes, issued_nonce: bytes,
                   node_public_key: bytes) -> list[Check]:
    """``bound`` is the evidence's report/qualifying data; ``compute(nonce, key)`` the formula."""
    node = node_id_from_public_key(node_public_key)
    if bound == compute(issued_nonce, node_public_key):
        return [passed("nonce", f"answers the issued nonce {short(issued_nonce)}"),
                passed("node-key", f"{field} binds the key of {node}")]
    if evidence_nonce != issued_nonce and bound == compute(evidence_nonce, node_public_key):
        return [failed("nonce", f"made for nonce {short(evidence_nonce)}, not for the issued "
                       f"nonce {short(issued_nonce)}: a replayed or stale answer"),
                passed("node-key", f"{field} binds the key of {node}")]
    return [unchecked("nonce", f"cannot confirm the issued nonce: the {field} matches no nonce "
                      "for this node key", AttestationLevel.NONE),
            failed("node-key", f"{field} does not bind the key of {node}: the evidence belongs "
                   "to another node key (or was altered)")]

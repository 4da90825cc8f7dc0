"""Certificate paths from a vendor-signed leaf (TPM EK, AMD VCEK, Intel PCK) to a trusted root.

Attestation PKIs are not the web PKI: EK certificates have empty or placeholder subjects and
critical TCG name extensions, AMD signs with RSA-PSS, and the roots are a short, explicitly
configured list. So instead of a web-PKI validator we do the small thing that is needed: walk
from the leaf through the supplied intermediates to a configured trust anchor, checking each
signature (``verify_directly_issued_by``), that every issuer is a CA, and that every certificate
is valid at ``now`` (given by the caller: pure code never reads the clock). Revocation (CRLs) is
not checked here; callers list it as unchecked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives import hashes

MAX_DEPTH = 5
MAX_CERT_SIZE = 8192


def decoded(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` with every field we read decoded now. ``cryptography`` parses names, validity,
    extensions and keys lazily, so a damaged certificate would otherwise raise deep inside a
    check; this turns that into one ``ValueError`` at load time."""
    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        _ = cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number
        _ = list(cert.extensions)
        cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as err:
        raise ValueError(f"certificate does not decode: {err}") from None
    return cert


def load_certificate(data: bytes) -> x509.Certificate:
    """A DER or PEM certificate, fully decoded; raises ``ValueError`` with the reason."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return decoded(x509.load_pem_x509_certificate(data))
        return decoded(x509.load_der_x509_certificate(trim_der(data)))
    except x509.InvalidVersion as err:  # not a ValueError
        raise ValueError(f"certificate does not decode: {err}") from None


def trim_der(data: bytes) -> bytes:
    """Cut a DER SEQUENCE to its encoded length: TPM NV indices often pad certificates."""
    if len(data) < 2 or data[0] != 0x30:
        return data
    first = data[1]
    if first < 0x80:
        return data[:2 + first]
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        return data
    length = int.from_bytes(data[2:2 + n], "big")
    return data[:2 + n + length]


def load_pem_bundle(text: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM bundle (e.g. the PCK chain inside a TDX quote)."""
    try:
        return [decoded(c) for c in x509.load_pem_x509_certificates(text)]
    except x509.InvalidVersion as err:
        raise ValueError(f"certificate does not decode: {err}") from None


def public_key_of(cert: x509.Certificate) -> CertificatePublicKeyTypes | None:
    """The certificate's key, or None when it is of an unknown type or does not decode
    (certificates parse lazily, so a damaged key only shows up here)."""
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


def describe(cert: x509.Certificate) -> str:
    name = cert.subject.rfc4514_string() or f"<empty subject, serial {cert.serial_number}>"
    return name


def _valid_at(cert: x509.Certificate, now: dt.datetime) -> str | None:
    if now < cert.not_valid_before_utc:
        return f"{describe(cert)} is not valid before {cert.not_valid_before_utc:%Y-%m-%d}"
    if now > cert.not_valid_after_utc:
        return f"{describe(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def chain_to_anchor(leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
                    anchors: Sequence[x509.Certificate], now: dt.datetime) -> tuple[bool, str]:
    """``(True, path description)`` if ``leaf`` chains to one of ``anchors``, else ``(False,
    reason)``. ``now`` must be timezone-aware (UTC)."""
    if not anchors:
        return False, "no trusted CA configured"
    anchor_prints = {a.fingerprint(hashes.SHA256()) for a in anchors}
    problems: list[str] = []

    def walk(cert: x509.Certificate, path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        problem = _valid_at(cert, now)
        if problem:
            problems.append(problem)
            return None
        if cert.fingerprint(hashes.SHA256()) in anchor_prints:
            return path
        if len(path) > MAX_DEPTH:
            problems.append(f"path longer than {MAX_DEPTH} certificates")
            return None
        candidates = [i for i in (*anchors, *intermediates)
                      if i.subject == cert.issuer and i not in path]
        if not candidates:
            problems.append(f"{describe(cert)} is issued by {cert.issuer.rfc4514_string()!r}, "
                            f"which is not among the {len(anchors)} trusted CA(s) nor in the "
                            "supplied chain")
        for issuer in candidates:
            if not _is_ca(issuer):
                problems.append(f"{describe(issuer)} is not a CA certificate")
                continue
            if not _signed_by(cert, issuer):
                problems.append(f"signature of {describe(cert)} does not verify with the key "
                                f"of {describe(issuer)}")
                continue
            found = walk(issuer, [*path, issuer])
            if found is not None:
                return found
        return None

    path = walk(leaf, [leaf])
    if path is not None:
        return True, " -> ".join(describe(c) for c in path)
    return False, problems[0] if problems else "no certificate path found"

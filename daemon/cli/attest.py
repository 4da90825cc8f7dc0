"""``novacron attest``: print this machine's attestation report, or check an evidence file.

    novacron attest [--nonce HEX] [--json] [--out FILE] [--tcti TCTI]
    novacron attest --verify FILE [--nonce HEX] [--node-id ID] [--trusted-ca PEM ...]
                    [--trusted-amd-root PEM ...] [--trusted-intel-root PEM ...] [--require LEVEL]

The first form detects what this machine offers, produces evidence bound to the nonce (random
unless given) and this node's key, and prints the report; ``--out`` writes the evidence
bundle for someone else to check. The second form verifies such a bundle, one line per check;
the exit status is 1 when a check failed or the level is below ``--require``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from daemon.attest.binding import NONCE_SIZE
from daemon.attest.result import Check, Status, VerificationResult
from daemon.cli.errors import CliError
from daemon.storage.datadir import default_data_dir
from daemon.storage.keyfile import KEY_FILE_NAME, KeyFileError, load_identity
from daemon.storage.userfile import UserFileError, read_capped
from protocol.attestation import AttestationLevel
from protocol.errors import ProtocolError
from protocol.identity import NodeIdentity, node_id_from_public_key, public_key_from_node_id


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("attest", help="print this machine's attestation report, or verify one",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--verify", metavar="FILE", type=Path,
                   help="check an evidence bundle written by 'novacron attest --out'")
    p.add_argument("--nonce", metavar="HEX",
                   help="the verifier's nonce, 64 hex digits (default: random when reporting; "
                        "the file's own when verifying, and then freshness is unchecked)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="node data directory (default: $NOVACRON_HOME or ~/.local/share/novacron)")
    p.add_argument("--out", metavar="FILE", type=Path, help="also write the evidence bundle here")
    p.add_argument("--tcti", help="use this TPM instead of the detected one, e.g. "
                                  "swtpm:host=127.0.0.1,port=2321")
    p.add_argument("--event-log", type=Path, default=None,
                   help="TPM event log to include (default: the kernel's, when readable)")
    p.add_argument("--node-id", help="verify against this node id (default: the key in the file)")
    p.add_argument("--trusted-ca", metavar="PEM", type=Path, action="append", default=[],
                   help="trust this EK-certificate CA (repeatable; none by default)")
    p.add_argument("--trusted-amd-root", metavar="PEM", type=Path, action="append", default=[],
                   help="trust this AMD root (ARK) for SEV-SNP (repeatable)")
    p.add_argument("--trusted-intel-root", metavar="PEM", type=Path, action="append", default=[],
                   help="trust this Intel root for TDX PCK chains (repeatable)")
    p.add_argument("--require", metavar="LEVEL", type=str.upper, default=None,
                   choices=[level.name for level in AttestationLevel],
                   help="exit 1 unless the verified level is at least this")
    p.set_defaults(func=run)


def _nonce(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        nonce = bytes.fromhex(text)
    except ValueError:
        raise CliError(f"--nonce must be {NONCE_SIZE * 2} hex digits, got {text[:80]!r}") from None
    if len(nonce) != NONCE_SIZE:
        raise CliError(f"--nonce must be {NONCE_SIZE * 2} hex digits ({NONCE_SIZE} bytes), "
                       f"got {len(nonce)} bytes")
    return nonce


MAX_PEM_BYTES = 1 << 20


def _read(path: Path, what: str, cap: int) -> bytes:
    try:
        return read_capped(path, cap)
    except UserFileError as err:
        raise CliError(f"{what} {path} {err}") from None


def jsonable(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def run(args: argparse.Namespace) -> int:
    return verify(args) if args.verify is not None else report(args)


def report(args: argparse.Namespace) -> int:
    from daemon.attest.collect import LocalAttester  # late: the attestation stack, on use only
    from daemon.attest.evidence import Challenge, EvidenceBundle

    for flag in ("node_id", "require"):
        if getattr(args, flag):
            raise CliError(f"--{flag.replace('_', '-')} only makes sense with --verify FILE")
    nonce = _nonce(args.nonce) or os.urandom(NONCE_SIZE)
    data_dir = args.data_dir or default_data_dir()
    with tempfile.TemporaryDirectory(prefix="novacron-attest-") as scratch:
        identity, key_note = _identity(data_dir)
        # Without a node key there is no node here: a throwaway key binds the evidence, and the
        # TPM's attestation key goes to a scratch directory, so nothing is left behind.
        attester = LocalAttester(data_dir if key_note is None else Path(scratch), tcti=args.tcti)
        if args.event_log is not None:
            attester.event_log_path = args.event_log
        rep = attester.report(Challenge(nonce), identity.public_key)
    if key_note is not None:
        print(f"novacron: {key_note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"node_id": identity.node_id, "nonce": nonce.hex(),
                          **jsonable(rep.to_wire())}, indent=2))
    else:
        print(f"attestation report for node {identity.node_id}")
        print(f"nonce: {nonce.hex()}")
        print("\n".join(rep.lines()))
    if args.out is not None:
        if rep.evidence is None:
            raise CliError(f"nothing written to {args.out}: this machine has no attestation "
                           "evidence (kind none; the reasons are above)", code=1)
        try:
            args.out.write_bytes(EvidenceBundle(identity.public_key, rep.evidence).encode())
        except OSError as err:
            raise CliError(f"cannot write {args.out}: {err.strerror}") from None
    return 0


def _identity(data_dir: Path) -> tuple[NodeIdentity, str | None]:
    """The node's key if ``data_dir`` holds one; else a throwaway key and a note saying so."""
    path = data_dir / KEY_FILE_NAME
    try:
        return load_identity(path), None
    except FileNotFoundError:
        pass
    except OSError as err:
        raise CliError(f"cannot use data directory {data_dir}: {err.strerror}") from None
    except KeyFileError as err:
        raise CliError(str(err)) from None
    return NodeIdentity.generate(os.urandom(32)), (
        f"no node key in {data_dir}: this report is bound to a throwaway key (start the daemon "
        "once, or give --data-dir, to bind it to your node)")


def _trusted(paths: list[Path], what: str) -> tuple[Any, ...]:
    from daemon.attest.verify import load_trusted_certificates

    certs: list[Any] = []
    for path in paths:
        try:
            found = load_trusted_certificates([_read(path, what, MAX_PEM_BYTES)])
        except ValueError as err:
            raise CliError(f"{what} {path} holds no PEM certificate: {err}") from None
        certs += found
    return tuple(certs)


def verify(args: argparse.Namespace) -> int:
    from daemon.attest.evidence import MAX_BUNDLE, EvidenceBundle  # late: on use only
    from daemon.attest.verify import VerifierConfig, verify_evidence

    if args.out is not None or args.tcti is not None:
        raise CliError("--out and --tcti are for reporting; drop them when using --verify")
    data = _read(args.verify, "evidence file", MAX_BUNDLE)
    try:
        bundle = EvidenceBundle.decode(data)
    except ProtocolError as err:
        raise CliError(f"{args.verify} is not a NovaCron evidence bundle: {err}") from None
    notes: list[Check] = []
    nonce = _nonce(args.nonce)
    if nonce is None:
        nonce = bundle.evidence.nonce
        notes.append(Check("freshness", Status.UNCHECKED, "nonce taken from the file, so a replay "
                           "would pass: give --nonce with the nonce you issued",
                           AttestationLevel.TEE))
    if args.node_id is not None:
        try:
            key = public_key_from_node_id(args.node_id)
        except ProtocolError as err:
            raise CliError(f"--node-id: {err}") from None
    else:
        key = bundle.node_public_key
        notes.append(Check("node-id", Status.UNCHECKED, "node key taken from the file "
                           f"({node_id_from_public_key(key)}): give --node-id to check it is "
                           "the node you expect", AttestationLevel.TEE))
    config = VerifierConfig(trusted_ek_cas=_trusted(args.trusted_ca, "trusted CA file"),
                            trusted_amd_roots=_trusted(args.trusted_amd_root, "AMD root file"),
                            trusted_intel_roots=_trusted(args.trusted_intel_root,
                                                         "Intel root file"))
    result = verify_evidence(bundle.evidence, nonce=nonce, node_public_key=key, config=config,
                             now=time.time())
    result = VerificationResult(result.kind, result.top, (*notes, *result.checks))
    if args.json:
        print(json.dumps({"kind": result.kind, "level": result.level.name, "ok": result.ok,
                          "checks": [{"name": c.name, "status": c.status.value,
                                      "detail": c.detail} for c in result.checks]}, indent=2))
    else:
        print(f"{args.verify}: {result.kind} evidence of node {node_id_from_public_key(key)}")
        print("\n".join(result.lines()))
    required = AttestationLevel[args.require] if args.require else AttestationLevel.NONE
    return 0 if result.ok and result.level >= required else 1

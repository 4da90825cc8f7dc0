"""Driving a real TPM 2.0 through ``tpm2-tools`` (the I/O half of TPM attestation).

Each operation runs the tools as subprocesses with ``TPM2TOOLS_TCTI`` pointing at the TPM:
``device:/dev/tpmrm0`` on a machine, ``swtpm:host=127.0.0.1,port=N`` for a software TPM.
Shelling out keeps all TPM command marshalling in the reference tools; everything we conclude
from their output is parsed and checked by the pure modules next door.

Keys:

- EK: the persistent RSA EK at 0x81010001 if the platform provisioned one, otherwise the EK is
  re-created from the TCG default template (``tpm2_createek``; same key every time). Its
  certificate is read from NV index 0x01C00002.
- AK: a restricted RSA-2048 RSASSA/SHA-256 signing key created once under the EK
  (``tpm2_createak``). Its public and TPM-wrapped private blobs live in ``state_dir``
  (``ak.pub``, ``ak.priv``, mode 0600) and are loaded under the EK for each quote, so the AK and
  its name stay the same across reboots and verifiers can recognise it.

Nothing is made persistent in the TPM. Transient objects and sessions are flushed before and
after each operation: a TPM without a resource manager (swtpm, ``/dev/tpm0``) keeps them
otherwise and runs out of its three slots.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from daemon.attest.binding import tpm_qualifying_data
from daemon.attest.evidence import MAX_EVENT_LOG, TpmEvidence
from daemon.attest.tpm.credential import Credential
from daemon.attest.tpm.structures import (HASH_IDS, HASH_SIZES, parse_public,
                                          unwrap_tpm2b_public)
from daemon.attest.x509chain import trim_der
from daemon.storage.userfile import UserFileError, read_capped
from daemon.errors import DaemonError
from protocol.errors import MalformedMessage

TOOLS = ("tpm2_createek", "tpm2_createak", "tpm2_readpublic", "tpm2_load", "tpm2_quote",
         "tpm2_nvread", "tpm2_getcap", "tpm2_flushcontext", "tpm2_startauthsession",
         "tpm2_policysecret", "tpm2_activatecredential")
EK_PERSISTENT_HANDLE = "0x81010001"
EK_CERT_NV_INDEX = "0x01c00002"
DEFAULT_EVENT_LOG = Path("/sys/kernel/security/tpm0/binary_bios_measurements")


class TpmError(DaemonError):
    """The TPM or tpm2-tools failed; the message names the step and the tool's complaint."""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


@dataclass(frozen=True, slots=True)
class TpmAnswer:
    evidence: TpmEvidence
    notes: tuple[str, ...]
    """What could not be included and why (no EK certificate, unreadable event log, ...)."""


class TpmDriver:
    def __init__(self, tcti: str, state_dir: Path, *,
                 event_log_path: Path | None = DEFAULT_EVENT_LOG, timeout: float = 60.0) -> None:
        self.tcti = tcti
        self.state_dir = state_dir
        self.event_log_path = event_log_path
        self.timeout = timeout

    # -- plumbing -------------------------------------------------------------------------------

    def _run(self, *args: str, cwd: Path) -> str:
        env = {**os.environ, "TPM2TOOLS_TCTI": self.tcti}
        try:
            done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=self.timeout)
        except FileNotFoundError:
            raise TpmError(f"{args[0]} not found: install tpm2-tools") from None
        except subprocess.TimeoutExpired:
            raise TpmError(f"{args[0]} timed out after {self.timeout:.0f} s") from None
        if done.returncode != 0:
            # The tools end with a generic "Unable to run"; the line before it says why.
            lines = [ln.removeprefix("ERROR:").strip() for ln in done.stderr.splitlines()
                     if ln.startswith("ERROR") and "Unable to run" not in ln]
            why = lines[-1] if lines else (done.stderr.strip().splitlines() or
                                           [f"exit status {done.returncode}"])[-1]
            raise TpmError(f"{args[0]} failed: {why}")
        return done.stdout

    def _flush(self, cwd: Path) -> None:
        for flag in ("-t", "-l", "-s"):
            try:
                self._run("tpm2_flushcontext", flag, cwd=cwd)
            except TpmError:
                pass  # nothing to flush is not an error worth reporting

    def _policy_session(self, cwd: Path) -> str:
        """A policy session satisfying the EK's policy (PolicySecret of the endorsement
        hierarchy), as ``-P`` wants it."""
        self._run("tpm2_startauthsession", "--policy-session", "-S", "session.ctx", cwd=cwd)
        self._run("tpm2_policysecret", "-S", "session.ctx", "-c", "e", cwd=cwd)
        return "session:session.ctx"

    def _end_session(self, cwd: Path) -> None:
        try:
            self._run("tpm2_flushcontext", "session.ctx", cwd=cwd)
        except TpmError:
            pass

    # -- keys -----------------------------------------------------------------------------------

    def _ek(self, cwd: Path) -> tuple[str, bytes]:
        """(parent argument for tools, EK TPMT_PUBLIC)."""
        try:
            self._run("tpm2_readpublic", "-c", EK_PERSISTENT_HANDLE, "-o", "ek.pub", cwd=cwd)
            public = unwrap_tpm2b_public((cwd / "ek.pub").read_bytes())
            if parse_public(public).has(1 << 17):  # a decryption key: an EK, not something else
                return EK_PERSISTENT_HANDLE, public
        except (TpmError, MalformedMessage):
            pass
        self._run("tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub", cwd=cwd)
        return "ek.ctx", unwrap_tpm2b_public((cwd / "ek.pub").read_bytes())

    def _create_ak(self, parent: str, cwd: Path) -> None:
        self._run("tpm2_createak", "-C", parent, "-c", "ak.ctx", "-G", "rsa", "-g", "sha256",
                  "-s", "rsassa", "-u", "ak.pub", "-r", "ak.priv", cwd=cwd)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in ("ak.pub", "ak.priv"):
            tmp = self.state_dir / (name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write((cwd / name).read_bytes())
            os.replace(tmp, self.state_dir / name)
        self._flush(cwd)

    def _load_ak(self, parent: str, cwd: Path) -> tuple[bytes, list[str]]:
        """Load (creating on first use) the AK; returns its TPMT_PUBLIC and notes."""
        notes: list[str] = []
        pub, priv = self.state_dir / "ak.pub", self.state_dir / "ak.priv"
        if not (pub.exists() and priv.exists()):
            self._create_ak(parent, cwd)
            notes.append(f"created a new attestation key in {self.state_dir}")
        for attempt in (1, 2):
            try:
                auth = self._policy_session(cwd)
                self._run("tpm2_load", "-C", parent, "-P", auth, "-u", str(pub), "-r", str(priv),
                          "-c", "ak.ctx", cwd=cwd)
                break
            except TpmError:
                if attempt == 2:
                    raise
                # The TPM was cleared (new endorsement seed): the old AK is gone for good.
                self._end_session(cwd)
                self._create_ak(parent, cwd)
                notes.append("the stored attestation key no longer loads (TPM cleared?); "
                             "created a new one")
            finally:
                self._end_session(cwd)
        return unwrap_tpm2b_public(pub.read_bytes()), notes

    def _pcr_bank(self, cwd: Path) -> tuple[str, list[int]]:
        out = self._run("tpm2_getcap", "pcrs", cwd=cwd)
        banks = {m.group(1): [int(x) for x in m.group(2).replace(",", " ").split()]
                 for m in re.finditer(r"-\s*(\w+):\s*\[([^\]]*)\]", out)}
        for name in ("sha256", "sha384", "sha1"):
            if banks.get(name):
                return name, sorted(banks[name])
        raise TpmError("the TPM has no allocated PCR bank")

    def _ek_certificate(self, cwd: Path) -> tuple[bytes | None, list[str]]:
        try:
            self._run("tpm2_nvread", EK_CERT_NV_INDEX, "-o", "ek.der", cwd=cwd)
        except TpmError as err:
            return None, [f"no EK certificate in NV index {EK_CERT_NV_INDEX} ({err})"]
        return trim_der((cwd / "ek.der").read_bytes()), []

    def _event_log(self) -> tuple[bytes | None, list[str]]:
        path = self.event_log_path
        if path is None:
            return None, []
        try:
            data = read_capped(path, MAX_EVENT_LOG)
        except UserFileError as err:
            if err.missing:
                return None, [f"event log {path}: no such file (securityfs not mounted, or no "
                              "firmware log)"]
            if "permission denied" in str(err):
                return None, [f"event log {path}: permission denied (readable by root only)"]
            return None, [f"event log {path} {err}, left out"]
        return data, []

    # -- the operations -------------------------------------------------------------------------

    def attest(self, nonce: bytes, node_public_key: bytes,
               credential: Credential | None = None) -> TpmAnswer:
        """A quote over all PCRs of the best bank bound to ``nonce`` and the node key, with the
        keys, EK certificate and event log; activates ``credential`` when given."""
        qualifying = tpm_qualifying_data(nonce, node_public_key)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.state_dir, prefix="tpm-") as tmp:
            cwd = Path(tmp)
            self._flush(cwd)
            try:
                parent, ek_public = self._ek(cwd)
                ak_public, notes = self._load_ak(parent, cwd)
                bank, pcrs = self._pcr_bank(cwd)
                self._run("tpm2_quote", "-c", "ak.ctx", "-l",
                          f"{bank}:{','.join(map(str, pcrs))}", "-q", qualifying.hex(),
                          "-m", "quote.msg", "-s", "quote.sig", "-o", "quote.pcrs",
                          "-F", "values", "-g", "sha256", cwd=cwd)
                secret = None
                if credential is not None:
                    self._flush(cwd)  # the quote left the AK loaded; the TPM has few slots
                    (cwd / "cred.bin").write_bytes(credential.to_tools_file())
                    auth = self._policy_session(cwd)
                    try:
                        self._run("tpm2_activatecredential", "-c", "ak.ctx", "-C", parent,
                                  "-i", "cred.bin", "-o", "secret.bin", "-P", auth, cwd=cwd)
                    finally:
                        self._end_session(cwd)
                    secret = (cwd / "secret.bin").read_bytes()
                ek_cert, cert_notes = self._ek_certificate(cwd)
            finally:
                self._flush(cwd)
            values = (cwd / "quote.pcrs").read_bytes()
            size = HASH_SIZES[HASH_IDS[bank]]
            if len(values) != size * len(pcrs):
                raise TpmError(f"tpm2_quote wrote {len(values)} bytes of PCR values, expected "
                               f"{size * len(pcrs)}")
            event_log, log_notes = self._event_log()
            evidence = TpmEvidence(
                nonce=nonce, attest=(cwd / "quote.msg").read_bytes(),
                signature=(cwd / "quote.sig").read_bytes(), pcr_alg=HASH_IDS[bank],
                pcrs=tuple((p, values[i * size:(i + 1) * size]) for i, p in enumerate(pcrs)),
                ak_public=ak_public, ek_public=ek_public, ek_certificate=ek_cert,
                event_log=event_log, activated_secret=secret)
        return TpmAnswer(evidence, tuple(notes + cert_notes + log_notes))

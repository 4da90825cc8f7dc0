"""A real software TPM for the attestation tests: swtpm, provisioned with an EK certificate
signed by a local CA in the test's temporary directory, serving on loopback ports."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SWTPM_TOOLS = ("swtpm", "swtpm_setup", "swtpm_localca", "tpm2_createek", "tpm2_createak",
               "tpm2_quote", "tpm2_activatecredential", "tpm2_pcrextend", "tpm2_pcrreset")


@dataclass(frozen=True)
class SoftwareTpm:
    tcti: str
    local_ca: Path
    """PEM of swtpm's local CA, the issuer of the EK certificate."""
    root_ca: Path
    """PEM of the root above the local CA."""

    def tool(self, *args: str) -> str:
        done = subprocess.run(list(args), env={**os.environ, "TPM2TOOLS_TCTI": self.tcti},
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{args[0]}: {done.stderr}"
        return done.stdout


def _free_port_pair() -> int:
    """A port p with p and p+1 free on loopback (the swtpm TCTI's data and control ports)."""
    for _ in range(50):
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free loopback ports")


def _start(state: Path, root: Path) -> tuple[int, int]:
    """Start swtpm; ``--daemon`` returns only once its sockets listen, so there is nothing to
    wait for. A port taken between our probe and swtpm's bind makes it fail: try another."""
    for _ in range(5):
        port = _free_port_pair()
        pidfile = root / "swtpm.pid"
        done = subprocess.run(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear", "--daemon", "--pid", f"file={pidfile}",
             "--log", f"file={root}/swtpm.log"], capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            return port, int(pidfile.read_text())
    raise RuntimeError(f"swtpm did not start: {done.stderr}")


def _stop(pid: int) -> None:
    """Terminate swtpm and wait for it to exit (through a pidfd: it is not our child)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGTERM)
        select.select([fd], [], [], 30)
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftwareTpm]:
    missing = [t for t in SWTPM_TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"software TPM unavailable: {', '.join(missing)} not installed, and "
                    "scripts/setup.sh could not install swtpm, swtpm-tools and tpm2-tools "
                    "(apt-get needs root or password-less sudo)")
    root = tmp_path_factory.mktemp("swtpm")
    state, ca = root / "state", root / "ca"
    state.mkdir()
    ca.mkdir()
    (root / "localca.conf").write_text(
        f"statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\n"
        f"certserial = {ca}/certserial\n")
    (root / "localca.options").write_text("--platform-manufacturer NovaCron\n"
                                          "--platform-version 2.1\n--platform-model test\n")
    (root / "setup.conf").write_text(
        f"create_certs_tool = {shutil.which('swtpm_localca')}\n"
        f"create_certs_tool_config = {root}/localca.conf\n"
        f"create_certs_tool_options = {root}/localca.options\nactive_pcr_banks = sha256\n")
    setup = subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--create-ek-cert",
                            "--config", str(root / "setup.conf"),
                            "--logfile", str(root / "setup.log")],
                           capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, (root / "setup.log").read_text()
    port, pid = _start(state, root)
    try:
        yield SoftwareTpm(f"swtpm:host=127.0.0.1,port={port}", ca / "issuercert.pem",
                          ca / "swtpm-localca-rootca-cert.pem")
    finally:
        _stop(pid)

"""Which attestation mechanisms this machine offers, and for each one that it lacks, why.

Detection only looks (stat, mode bits, small text files under /proc and /sys); it never opens
a device or creates a configfs entry, so it is safe to run at any time and as any user. Every
"no" comes with a reason a volunteer can act on: "/dev/tpmrm0: no device node", "permission
denied (group tss)", "configfs not mounted", "running in a container".

The mechanisms:

- TPM 2.0 through the kernel resource manager ``/dev/tpmrm0`` (preferred: the kernel flushes our
  transient objects when we close it) or the raw ``/dev/tpm0``.
- configfs-tsm, the unified report interface of Linux 6.7+ (``/sys/kernel/config/tsm/report``),
  served by the ``sev_guest``, ``tdx_guest`` or ``arm_cca_guest`` provider.
- The confidential-guest devices ``/dev/sev-guest`` (AMD SEV-SNP) and ``/dev/tdx_guest``
  (Intel TDX). NovaCron collects TEE evidence through configfs-tsm; a guest device without it
  is reported as present but not usable by us, with the reason.
"""

from __future__ import annotations

import grp
from dataclasses import dataclass
from enum import Enum

from daemon.attest.probe import FsProbe, PathInfo

TPM_DEVICES = ("/dev/tpmrm0", "/dev/tpm0")
TSM_REPORT_DIR = "/sys/kernel/config/tsm/report"
SEV_GUEST_DEVICE = "/dev/sev-guest"
TDX_GUEST_DEVICE = "/dev/tdx_guest"
TSM_PROVIDERS = ("sev_guest", "tdx_guest", "arm_cca_guest")


class Mechanism(Enum):
    TPM2 = "TPM 2.0"
    CONFIGFS_TSM = "configfs-tsm"
    SEV_SNP = "AMD SEV-SNP"
    TDX = "Intel TDX"


@dataclass(frozen=True, slots=True)
class Availability:
    """One mechanism: usable or not, where, and the reasons (why not, or caveats)."""

    mechanism: Mechanism
    available: bool
    path: str | None
    reasons: tuple[str, ...]
    providers: tuple[str, ...] = ()
    """configfs-tsm only: the providers whose modules or devices are visible."""

    def describe(self) -> str:
        """One line, e.g. ``TPM 2.0: /dev/tpmrm0: no device node; /dev/tpm0: no device node``."""
        state = f"available at {self.path}" if self.available else ""
        parts = [p for p in (state, *self.reasons) if p]
        return f"{self.mechanism.value}: " + "; ".join(parts)


@dataclass(frozen=True, slots=True)
class ContainerHint:
    in_container: bool
    evidence: tuple[str, ...]

    def describe(self) -> str:
        return (f"running in a container ({'; '.join(self.evidence)}): a container sees the "
                "host's TPM and TEE devices only if its runtime passes them through")


@dataclass(frozen=True, slots=True)
class Detection:
    tpm: Availability
    tsm: Availability
    sev_snp: Availability
    tdx: Availability
    container: ContainerHint

    @property
    def mechanisms(self) -> tuple[Availability, ...]:
        return (self.tpm, self.tsm, self.sev_snp, self.tdx)

    def reasons(self) -> tuple[str, ...]:
        """Every unavailable mechanism with its reasons, then the container hint if any."""
        lines = [a.describe() for a in self.mechanisms if not a.available]
        if self.container.in_container:
            lines.append(self.container.describe())
        return tuple(lines)


def detect(probe: FsProbe) -> Detection:
    return Detection(tpm=detect_tpm(probe), tsm=detect_tsm(probe),
                     sev_snp=_detect_guest_device(probe, Mechanism.SEV_SNP, SEV_GUEST_DEVICE,
                                                  "sev_guest", "an SEV-SNP guest"),
                     tdx=_detect_guest_device(probe, Mechanism.TDX, TDX_GUEST_DEVICE, "tdx_guest",
                                              "a TDX guest"),
                     container=detect_container(probe))


def _device_problem(probe: FsProbe, path: str, info: PathInfo) -> str | None:
    """None when ``path`` is a device node we may open read-write, else the reason."""
    if not info.exists:
        return f"{path}: " + (info.error or "no device node")
    if not info.is_char_device:
        return f"{path}: not a character device"
    if not probe.may_read_write(info):
        return f"{path}: permission denied ({_ownership(info)})"
    return None


def _ownership(info: PathInfo) -> str:
    try:
        group = grp.getgrgid(info.gid).gr_name
    except KeyError:
        group = str(info.gid)
    return f"mode {info.mode & 0o777:04o}, group {group}; add this user to group {group}"


def detect_tpm(probe: FsProbe) -> Availability:
    reasons: list[str] = []
    usable: str | None = None
    for path in TPM_DEVICES:
        problem = _device_problem(probe, path, probe.info(path))
        if problem is None:
            usable = usable or path
        else:
            reasons.append(problem)
    kernel_tpms = [d for d in probe.listdir("/sys/class/tpm") if d.startswith("tpm")]
    if usable is None:
        if not kernel_tpms:
            reasons.append("the kernel reports no TPM (/sys/class/tpm is empty or absent)")
        elif not any(probe.exists(p) for p in TPM_DEVICES):
            reasons.append(f"the kernel has {', '.join(kernel_tpms)} but no device node is "
                           "visible here")
        return Availability(Mechanism.TPM2, False, None, tuple(reasons))
    major = (probe.read_text("/sys/class/tpm/tpm0/tpm_version_major") or "").strip()
    if major and major != "2":
        return Availability(Mechanism.TPM2, False, None,
                            (f"{usable}: TPM version {major}, NovaCron needs TPM 2.0",))
    # The usable device is enough; a missing sibling (old kernels lack tpmrm0) is no problem.
    return Availability(Mechanism.TPM2, True, usable, ())


def _configfs_state(probe: FsProbe) -> str:
    """Why the configfs-tsm report directory is missing."""
    filesystems = probe.read_text("/proc/filesystems") or ""
    if not any(line.split()[-1:] == ["configfs"] for line in filesystems.splitlines()):
        return "configfs not supported by this kernel (not in /proc/filesystems)"
    mounts = probe.read_text("/proc/mounts") or ""
    if not any(len(f := line.split()) > 2 and f[1] == "/sys/kernel/config" and f[2] == "configfs"
               for line in mounts.splitlines()):
        return "configfs not mounted (mount -t configfs none /sys/kernel/config)"
    if not probe.info("/sys/kernel/config/tsm").is_dir:
        return "no TSM core in configfs (needs Linux 6.7+ built with CONFIG_TSM_REPORTS)"
    return "no report interface (no TSM provider loaded: not a confidential VM?)"


def _visible_providers(probe: FsProbe) -> tuple[str, ...]:
    found = [name for name in TSM_PROVIDERS if probe.exists(f"/sys/module/{name}")]
    for name, device in (("sev_guest", SEV_GUEST_DEVICE), ("tdx_guest", TDX_GUEST_DEVICE)):
        if name not in found and probe.exists(device):
            found.append(name)
    return tuple(found)


def detect_tsm(probe: FsProbe) -> Availability:
    info = probe.info(TSM_REPORT_DIR)
    if not info.is_dir:
        return Availability(Mechanism.CONFIGFS_TSM, False, None,
                            (f"{TSM_REPORT_DIR}: {_configfs_state(probe)}",))
    if not probe.may_read_write(info):
        return Availability(Mechanism.CONFIGFS_TSM, False, None,
                            (f"{TSM_REPORT_DIR}: permission denied (reports need root)",))
    providers = _visible_providers(probe)
    caveats = () if providers else ("provider not yet known (read when a report is made)",)
    return Availability(Mechanism.CONFIGFS_TSM, True, TSM_REPORT_DIR, caveats, providers)


def _detect_guest_device(probe: FsProbe, mechanism: Mechanism, device: str,
                         provider: str, guest: str) -> Availability:
    info = probe.info(device)
    if not info.exists:
        return Availability(mechanism, False, None,
                            (f"{device}: {info.error or 'no device node'} (not {guest}, or "
                             f"the {provider} module is not loaded)",))
    problem = _device_problem(probe, device, info)
    if problem is not None:
        return Availability(mechanism, False, None, (problem,))
    if not probe.info(TSM_REPORT_DIR).is_dir:
        return Availability(mechanism, False, device, (
            f"{device} present, but NovaCron collects reports through configfs-tsm "
            f"(Linux 6.7+), which is missing: {_configfs_state(probe)}",))
    return Availability(mechanism, True, device, ())


_CGROUP_HINTS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio")


def detect_container(probe: FsProbe) -> ContainerHint:
    evidence: list[str] = []
    if probe.exists("/.dockerenv"):
        evidence.append("/.dockerenv exists")
    if probe.exists("/run/.containerenv"):
        evidence.append("/run/.containerenv exists")
    runtime = (probe.read_text("/run/systemd/container", 256) or "").strip()
    if runtime:
        evidence.append(f"/run/systemd/container says {runtime!r}")
    cgroup = probe.read_text("/proc/1/cgroup", 65536) or ""
    hints = sorted({h for h in _CGROUP_HINTS if h in cgroup})
    if hints:
        evidence.append(f"/proc/1/cgroup mentions {', '.join(hints)}")
    environ = probe.read_text("/proc/1/environ", 65536) or ""
    for entry in environ.split("\0"):
        if entry.startswith("container="):
            evidence.append(f"PID 1 environment has {entry}")
    return ContainerHint(bool(evidence), tuple(evidence))

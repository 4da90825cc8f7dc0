"""Detection on fake roots (machines we do not have) and on this machine (what is true here)."""

from __future__ import annotations

import grp
import os
from pathlib import Path

from daemon.attest.detect import detect
from daemon.attest.facts import gather_facts
from daemon.attest.probe import FsProbe

USER = 54321  # not the uid running the tests, so the fake files are someone else's


def fake(root: Path, files: dict[str, str | int]) -> FsProbe:
    """A fake root: ``{path: text}`` for files, ``{path: mode}`` for device stand-ins (plain
    files, accepted as devices by this probe), paths ending in "/" for directories."""
    for path, content in files.items():
        target = root / path.lstrip("/")
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, int):
            target.write_bytes(b"")
            target.chmod(content)
        else:
            target.write_text(content)
    return FsProbe(root, uid=USER, gids=(USER,), devices_may_be_files=True)


def test_bare_machine_says_why_for_everything(tmp_path: Path) -> None:
    d = detect(fake(tmp_path, {"/proc/filesystems": "nodev\tsysfs\nnodev\tproc\n"}))
    assert not any(a.available for a in d.mechanisms)
    assert d.reasons() == (
        "TPM 2.0: /dev/tpmrm0: no device node; /dev/tpm0: no device node; the kernel reports no "
        "TPM (/sys/class/tpm is empty or absent)",
        "configfs-tsm: /sys/kernel/config/tsm/report: configfs not supported by this kernel (not "
        "in /proc/filesystems)",
        "AMD SEV-SNP: /dev/sev-guest: no device node (not an SEV-SNP guest, or the sev_guest "
        "module is not loaded)",
        "Intel TDX: /dev/tdx_guest: no device node (not a TDX guest, or the tdx_guest module is "
        "not loaded)")


def test_tpm_the_user_may_not_open(tmp_path: Path) -> None:
    d = detect(fake(tmp_path, {"/dev/tpmrm0": 0o660, "/dev/tpm0": 0o600,
                               "/sys/class/tpm/tpm0/": ""}))
    assert not d.tpm.available
    group = grp.getgrgid((tmp_path / "dev/tpmrm0").stat().st_gid).gr_name
    assert d.tpm.reasons == (
        f"/dev/tpmrm0: permission denied (mode 0660, group {group}; add this user to group "
        f"{group})",
        f"/dev/tpm0: permission denied (mode 0600, group {group}; add this user to group {group})")


def test_usable_tpm_prefers_the_resource_manager(tmp_path: Path) -> None:
    probe = fake(tmp_path, {"/dev/tpmrm0": 0o666, "/dev/tpm0": 0o600,
                            "/sys/class/tpm/tpm0/tpm_version_major": "2\n"})
    d = detect(probe)
    assert d.tpm.available and d.tpm.path == "/dev/tpmrm0" and d.tpm.reasons == ()


def test_tpm_12_is_not_enough(tmp_path: Path) -> None:
    d = detect(fake(tmp_path, {"/dev/tpm0": 0o666, "/sys/class/tpm/tpm0/tpm_version_major": "1"}))
    assert d.tpm.reasons == ("/dev/tpm0: TPM version 1, NovaCron needs TPM 2.0",)


def test_kernel_tpm_without_device_node_here(tmp_path: Path) -> None:
    d = detect(fake(tmp_path, {"/sys/class/tpm/tpm0/": ""}))
    assert d.tpm.reasons[-1] == "the kernel has tpm0 but no device node is visible here"


def test_configfs_states(tmp_path: Path) -> None:
    fs = "nodev\tconfigfs\n"
    unmounted = detect(fake(tmp_path / "a", {"/proc/filesystems": fs, "/proc/mounts": ""}))
    assert unmounted.tsm.reasons == ("/sys/kernel/config/tsm/report: configfs not mounted (mount "
                                     "-t configfs none /sys/kernel/config)",)
    mounts = "configfs /sys/kernel/config configfs rw 0 0\n"
    no_tsm = detect(fake(tmp_path / "b", {"/proc/filesystems": fs, "/proc/mounts": mounts,
                                          "/sys/kernel/config/": ""}))
    assert "no TSM core in configfs" in no_tsm.tsm.reasons[0]


def test_snp_guest_with_configfs_tsm(tmp_path: Path) -> None:
    probe = fake(tmp_path, {"/sys/kernel/config/tsm/report/": "", "/dev/sev-guest": 0o600,
                            "/sys/module/sev_guest/": ""})
    probe.uid = 0  # configfs-tsm reports need root
    d = detect(probe)
    assert d.tsm.available and d.tsm.providers == ("sev_guest",)
    assert d.sev_snp.available and not d.tdx.available


def test_snp_device_without_configfs_tsm_is_explained(tmp_path: Path) -> None:
    d = detect(fake(tmp_path, {"/dev/sev-guest": 0o666, "/proc/filesystems": "nodev\tproc\n"}))
    assert d.sev_snp.describe() == (
        "AMD SEV-SNP: /dev/sev-guest present, but NovaCron collects reports through configfs-tsm "
        "(Linux 6.7+), which is missing: configfs not supported by this kernel (not in "
        "/proc/filesystems)")


def test_container_hints(tmp_path: Path) -> None:
    d = detect(fake(tmp_path, {"/run/.containerenv": "", "/proc/1/cgroup": "0::/kubepods/pod1\n",
                               "/proc/1/environ": "PATH=/bin\0container=podman\0"}))
    assert d.container.evidence == ("/run/.containerenv exists",
                                    "/proc/1/cgroup mentions kubepods",
                                    "PID 1 environment has container=podman")
    assert d.reasons()[-1].startswith("running in a container (/run/.containerenv exists; ")


def test_this_machine_reports_what_the_filesystem_shows() -> None:
    d = detect(FsProbe())
    for path, availability in (("/dev/tpmrm0", d.tpm), ("/dev/tpm0", d.tpm),
                               ("/dev/sev-guest", d.sev_snp), ("/dev/tdx_guest", d.tdx)):
        if not os.path.exists(path):
            assert f"{path}: no device node" in availability.describe()
    assert d.tsm.available == os.path.isdir("/sys/kernel/config/tsm/report")
    assert d.container.in_container == (os.path.exists("/.dockerenv")
                                        or os.path.exists("/run/.containerenv")
                                        or bool(d.container.evidence))


def test_self_reported_facts_from_a_fake_root(tmp_path: Path) -> None:
    facts = gather_facts(fake(tmp_path, {
        "/proc/cpuinfo": "processor\t: 0\nmodel name\t: Test CPU\n\nprocessor\t: 1\n",
        "/proc/meminfo": "MemTotal:       2048 kB\n",
        "/etc/os-release": 'PRETTY_NAME="TestOS 1"\n', "/proc/sys/kernel/osrelease": "6.7.0\n"}))
    assert (facts.cpu_model, facts.cpu_count, facts.memory_bytes, facts.os, facts.kernel) == (
        "Test CPU", 2, 2048 * 1024, "TestOS 1", "6.7.0")

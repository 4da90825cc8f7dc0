"""``novacron service install|uninstall`` into a temporary unit directory (no systemd runs here):
the unit's resource controls follow the volunteer's settings, including live changes."""

from __future__ import annotations

import configparser
import subprocess
import sys

from daemon.owner.settings import Settings, SettingsStore
from daemon.runtime.volunteer import cpu_count
from daemon.storage.db import Database

CLI = [sys.executable, "-m", "daemon"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def unit(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]
    parser.read(path)
    return parser


def test_install_writes_a_unit_that_follows_the_settings_and_uninstall_removes_it(tmp_path):
    data = tmp_path / "node"
    config = tmp_path / "node.toml"
    config.write_text(f'data_dir = "{data}"\n[volunteer]\ncpu_share = 0.25\nmax_memory_mb = 1024\n')
    units = tmp_path / "units"
    res = cli("service", "install", "--user", "--config", str(config), "--unit-dir", str(units))
    assert res.returncode == 0, res.stderr
    path = units / "novacron.service"
    assert res.stdout.startswith(f"wrote {path} (cpu share now 25% of {cpu_count()} core(s), "
                                 "1024 MB per task")
    s = unit(path)["Service"]
    # The daemon holds the share on its workers' delegated cgroup and follows live changes; a
    # fixed quota in the unit would cap a share the owner raises later.
    assert s["Delegate"] == "yes" and "CPUQuota" not in s and "MemoryMax" not in s
    assert s["Nice"] == "10" and s["Restart"] == "on-failure"
    assert s["ExecStart"] == f"{sys.executable} -m daemon daemon --config {config}"
    assert "User" not in s and unit(path)["Install"]["WantedBy"] == "default.target"

    # A share the owner changed while the daemon ran (kept in its database) wins, as in the daemon.
    data.mkdir()
    db = Database(data / "node.db")
    SettingsStore(db, Settings(0.25, 1024, "", False)).change({"cpu_share": 1.0})
    db.close()
    res = cli("service", "install", "--config", str(config), "--unit-dir", str(units),
              "--run-as", "volunteer")
    assert res.returncode == 0, res.stderr
    s2 = unit(path)
    assert res.stdout.startswith(f"wrote {path} (cpu share now 100% of")
    assert s2["Service"]["User"] == "volunteer" and s2["Install"]["WantedBy"] == "multi-user.target"

    res = cli("service", "uninstall", "--unit-dir", str(units))
    assert res.returncode == 0 and res.stdout.strip() == f"removed {path}"
    assert not path.exists()
    again = cli("service", "uninstall", "--unit-dir", str(units))
    assert again.stdout.strip() == f"no unit at {path}; nothing to remove"


def test_a_bad_config_is_one_line(tmp_path):
    config = tmp_path / "node.toml"
    config.write_text('[volunteer]\ncpu_share = 3\n')
    res = cli("service", "install", "--user", "--config", str(config), "--unit-dir", str(tmp_path))
    assert res.returncode != 0
    assert res.stderr == f"novacron: {config}: volunteer.cpu_share must be in (0, 1], got 3.0\n"

"""``novacron service install|uninstall``: run the daemon as a systemd service.

The kernel enforces the volunteer's settings, and they follow live changes: the unit delegates
its cgroup to the daemon (``Delegate=yes``), which puts its workers in a child cgroup whose CPU
quota (cpu_share x cores) and memory ceiling (each worker's task limit plus the runtime's own)
it rewrites whenever the owner changes a setting (``daemon.owner.cgroup``). A fixed
``CPUQuota``/``MemoryMax`` in the unit would hold only the values at install time, and would
silently cap a share the owner later raised. The unit adds ``Nice=10`` and idle I/O priority.
``--user`` writes a user unit (``~/.config/systemd/user``, no root); without it a system unit
(``/etc/systemd/system``) running as ``--run-as`` (default: you).

``--unit-dir`` writes elsewhere and leaves systemctl alone (packaging, tests). Otherwise, where
systemd runs, ``install`` reloads it and enables and starts the unit, ``uninstall`` stops and
disables it; where it does not, both print the systemctl commands to run.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

from daemon.cli.errors import CliError

UNIT = "novacron.service"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("service", help="install or remove a systemd service for the daemon")
    ss = p.add_subparsers(dest="service_command", metavar="ACTION")
    ss.required = True
    for name, fn, what in (("install", install_cmd, "write (and start) the systemd unit"),
                           ("uninstall", uninstall_cmd, "stop and remove the systemd unit")):
        q = ss.add_parser(name, help=what)
        q.add_argument("--user", action="store_true", help="a user unit (no root needed)")
        q.add_argument("--unit-dir", type=Path, default=None,
                       help="write the unit here and do not call systemctl")
        if name == "install":
            q.add_argument("--config", type=Path, default=None,
                           help="the node's TOML config (recommended; see docs/config.md)")
            q.add_argument("--data-dir", type=Path, default=None, help="node data directory")
            q.add_argument("--run-as", default=None, help="system units: the user to run as "
                                                          "(default: you)")
        q.set_defaults(func=fn)


def _unit_dir(args: argparse.Namespace) -> Path:
    if args.unit_dir is not None:
        return args.unit_dir
    if args.user:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "systemd" / "user"
    return Path("/etc/systemd/system")


def render_unit(*, exec_start: list[str], user: str | None, data_dir: Path) -> str:
    """The unit file's text (pure)."""
    cmd = " ".join(_quote(a) for a in exec_start)
    lines = [
        "# Written by `novacron service install`.",
        "[Unit]",
        "Description=NovaCron volunteer computing node",
        "Wants=network-online.target",
        "After=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"ExecStart={cmd}",
        "Restart=on-failure",
        "RestartSec=10",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        f"Environment=NOVACRON_HOME={_quote(str(data_dir))}",
        "# The daemon holds the CPU share and memory limits on its workers' own cgroup and",
        "# follows the owner's live changes (`novacron settings`); no fixed quota here.",
        "Delegate=yes",
        "Nice=10",
        "IOSchedulingClass=idle",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ]
    if user:
        lines.append(f"User={user}")
    lines += ["", "[Install]", "WantedBy=default.target" if user is None else
              "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _quote(arg: str) -> str:
    return f'"{arg}"' if any(c in arg for c in ' "\\') else arg


def _systemctl(args: argparse.Namespace, *verbs: str) -> bool:
    """Run systemctl if we manage this unit dir and systemd runs here; say what we did."""
    if args.unit_dir is not None:
        return False
    if not shutil.which("systemctl") or not Path("/run/systemd/system").is_dir():
        return False
    base = ["systemctl", *(["--user"] if args.user else [])]
    for verb in verbs:
        res = subprocess.run([*base, *verb.split()], capture_output=True, text=True)
        if res.returncode != 0:
            raise CliError(f"`{' '.join(base)} {verb}` failed: {res.stderr.strip()[:300]}")
    return True


def install_cmd(args: argparse.Namespace) -> int:
    from daemon.config import ConfigError, load_config
    from daemon.owner.settings import Settings, SettingsStore
    from daemon.runtime.volunteer import cpu_count
    from daemon.storage.db import Database, StorageError

    config_path = args.config.resolve() if args.config else None
    overrides = {"data_dir": str(args.data_dir.resolve()) if args.data_dir else None}
    try:
        config = load_config(config_path, overrides)
    except ConfigError as err:
        raise CliError(str(err)) from None
    settings = Settings.from_config(config.volunteer)
    if config.db_path.exists():  # the owner's live changes win, as in the daemon
        try:
            db = Database(config.db_path)
            settings = SettingsStore(db, settings).current
            db.close()
        except StorageError as err:
            raise CliError(str(err)) from None
    if os.geteuid() != 0 and not args.user and args.unit_dir is None:
        raise CliError("a system unit needs root; use `novacron service install --user` for a "
                       "user unit, or run with sudo")
    user = None if args.user else (args.run_as or os.environ.get("SUDO_USER") or getpass.getuser())
    exec_start = [sys.executable, "-m", "daemon", "daemon"]
    exec_start += ["--config", str(config_path)] if config_path else [
        "--data-dir", str(config.data_dir)]
    text = render_unit(exec_start=exec_start, user=user, data_dir=config.data_dir)
    directory = _unit_dir(args)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / UNIT
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    except OSError as err:
        raise CliError(f"cannot write {directory / UNIT}: {err.strerror}") from None
    print(f"wrote {path} (cpu share now {settings.cpu_share:.0%} of {cpu_count()} core(s), "
          f"{settings.max_memory_mb} MB per task; the daemon follows `novacron settings` live)")
    if _systemctl(args, "daemon-reload", f"enable --now {UNIT}"):
        print(f"started: systemctl {'--user ' if args.user else ''}status {UNIT}")
    elif args.unit_dir is None:
        flag = "--user " if args.user else ""
        print(f"then: systemctl {flag}daemon-reload && systemctl {flag}enable --now {UNIT}")
    return 0


def uninstall_cmd(args: argparse.Namespace) -> int:
    path = _unit_dir(args) / UNIT
    if not path.exists():
        print(f"no unit at {path}; nothing to remove")
        return 0
    try:
        _systemctl(args, f"disable --now {UNIT}")
        path.unlink()
        _systemctl(args, "daemon-reload")
    except OSError as err:
        raise CliError(f"cannot remove {path}: {err.strerror}") from None
    print(f"removed {path}")
    return 0

"""Node configuration: a TOML file, overridden by command-line flags.

Every mistake is one line naming the setting and the fix (an unknown key suggests the nearest
known one). The listen address for real volunteers is a setting: the default listens on all
interfaces at port 4001; the local testnet and the tests always set 127.0.0.1.

Example (``novacron daemon --config node.toml``)::

    network = "novacron-local"
    data_dir = "~/.local/share/novacron"

    [p2p]
    listen = ["/ip4/0.0.0.0/tcp/4001"]
    bootstrap = ["/ip4/203.0.113.7/tcp/4001/p2p/12D3KooW..."]

    [volunteer]
    cpu_share = 0.5          # at most half of this machine's cores run tasks
    max_memory_mb = 2048
    idle_only = false        # true: run tasks only while the machine is idle
    hours = "22:00-07:00"    # run tasks only in these local hours (empty: any time)
    domain = "home-dsl"      # failure domain: replicas of a task go to different domains

    [ui]
    port = 7681              # the owner's web page on 127.0.0.1 (0: off); `novacron ui`

    [metrics]
    port = 0                 # Prometheus metrics on 127.0.0.1 (0: off), e.g. 9464

    [storage]
    sync = "normal"          # "full" also survives power loss, at some commit latency

    [log]
    level = "info"
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from daemon.errors import DaemonError
from daemon.storage.datadir import default_data_dir
from daemon.storage.userfile import UserFileError, read_capped, read_capped_text

MAX_CONFIG_BYTES = 1 << 20


class ConfigError(DaemonError):
    """One line: which setting is wrong and how to fix it."""


@dataclass(frozen=True)
class VolunteerConfig:
    cpu_share: float = 0.5
    max_memory_mb: int = 2048
    idle_only: bool = False
    hours: str = ""
    domain: str = ""
    python: bool = True
    """Run Python tasks: fetches ~150 MB once, compiles once (~2.7 GB of memory for a few
    minutes, ~330 MB of disk), then offers the ``python`` runtime."""
    python_fetch: bool = True
    """Fetch the interpreter from the package index when it is not in the cache."""
    python_cache: Path | None = None
    """The machine's interpreter cache (default ``~/.cache/novacron/python``), shared by every
    daemon of this user on the machine so it is compiled once."""


@dataclass(frozen=True)
class NodeConfig:
    data_dir: Path
    network: str = "novacron-local"
    listen: tuple[str, ...] = ("/ip4/0.0.0.0/tcp/4001",)
    bootstrap: tuple[str, ...] = ()
    announce: tuple[str, ...] = ()
    """Addresses to advertise instead of the listen ones (a forwarded port); empty: listen's."""
    relay_service: bool = True
    """Lend capped relay slots to volunteers behind NAT (``daemon.p2p.traversal``)."""
    genesis: Path | None = None
    volunteer: VolunteerConfig = field(default_factory=VolunteerConfig)
    storage_sync: str = "normal"
    log_level: str = "info"
    log_file: Path | None = None
    attest_tcti: str | None = None
    """A TPM to use instead of the detected device (e.g. ``swtpm:host=127.0.0.1,port=2321``)."""
    trusted_ek_cas: tuple[Path, ...] = ()
    """PEM files of CAs whose endorsement-key certificates this node trusts when it verifies."""
    ui_port: int = 7681
    """The owner's web page, on 127.0.0.1 only (0: off)."""
    metrics_port: int = 0
    """Prometheus metrics on 127.0.0.1 only (0: off, the default)."""

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "control.sock"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "node.db"

    @property
    def genesis_path(self) -> Path:
        return self.genesis or self.data_dir / "genesis.toml"


# setting name -> (expected type(s), human description)
_SCHEMA: dict[str, tuple[Any, str]] = {
    "network": (str, "a network name"),
    "data_dir": (str, "a directory path"),
    "genesis": (str, "a file path"),
    "p2p.listen": (list, "a list of multiaddrs like \"/ip4/127.0.0.1/tcp/4001\""),
    "p2p.bootstrap": (list, "a list of multiaddrs ending in /p2p/<node id>"),
    "p2p.announce": (list, "a list of multiaddrs like \"/ip4/203.0.113.7/tcp/4001\""),
    "p2p.relay_service": (bool, "true or false (relay for volunteers behind NAT)"),
    "volunteer.cpu_share": ((int, float), "a fraction of cores between 0 and 1"),
    "volunteer.max_memory_mb": (int, "megabytes (an integer)"),
    "volunteer.idle_only": (bool, "true or false"),
    "volunteer.hours": (str, "local hours like \"22:00-07:00\" (empty: any time)"),
    "volunteer.domain": (str, "a failure-domain tag (e.g. your site or ISP); replicas spread over domains"),
    "volunteer.python": (bool, "true or false (run Python tasks)"),
    "volunteer.python_fetch": (bool, "true or false (download the interpreter when missing)"),
    "volunteer.python_cache": (str, "a directory path"),
    "storage.sync": (str, "\"normal\" or \"full\""),
    "log.level": (str, "one of debug, info, warning, error"),
    "attestation.tcti": (str, "a TPM's TCTI string, e.g. \"swtpm:host=127.0.0.1,port=2321\""),
    "attestation.trusted_ek_cas": (list, "a list of PEM files of endorsement-key CAs to trust"),
    "log.file": (str, "a file path"),
    "ui.port": (int, "a TCP port for the web page on 127.0.0.1 (0: off)"),
    "metrics.port": (int, "a TCP port for Prometheus metrics on 127.0.0.1 (0: off)"),
}
_SECTIONS = {k.split(".")[0] for k in _SCHEMA if "." in k}

_HOURS = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_NETWORK = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _flatten(doc: dict[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            if key not in _SECTIONS:
                raise ConfigError(_unknown(key, source, sections=True))
            for sub, v in value.items():
                flat[f"{key}.{sub}"] = v
        else:
            flat[key] = value
    _check(flat, source)
    return flat


def _check(flat: dict[str, Any], source: str) -> None:
    """Every key known, every value of its setting's type."""
    for key, value in flat.items():
        if key not in _SCHEMA:
            raise ConfigError(_unknown(key, source))
        kind, what = _SCHEMA[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ConfigError(f"{source}: {key} must be {what}, got {value!r}")
        if kind is list and not all(isinstance(x, str) for x in value):
            raise ConfigError(f"{source}: {key} must be {what}")


def _unknown(key: str, source: str, sections: bool = False) -> str:
    names = sorted(_SECTIONS) if sections else sorted(_SCHEMA)
    near = difflib.get_close_matches(key, names, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else f" (known: {', '.join(names)})"
    return f"{source}: unknown {'section' if sections else 'setting'} {key!r}{hint}"


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> NodeConfig:
    """Read ``path`` (optional), apply ``overrides`` (flat setting names), validate."""
    flat: dict[str, Any] = {}
    base = Path.cwd()
    if path is not None:
        try:
            doc = tomllib.loads(read_capped_text(path, MAX_CONFIG_BYTES))
        except UserFileError as err:
            raise ConfigError(f"config file {path} {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path} is not valid TOML: {err}") from None
        flat = _flatten(doc, str(path))
        base = path.parent
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check(given, "flags")
    flat.update(given)
    return _build(flat, base, str(path) if path else "flags")


def _path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p)


def _build(flat: dict[str, Any], base: Path, source: str) -> NodeConfig:
    data_dir = _path(flat["data_dir"], base) if "data_dir" in flat else default_data_dir()
    cfg = NodeConfig(data_dir=data_dir)
    network = flat.get("network", cfg.network)
    if not _NETWORK.match(network):
        raise ConfigError(f"{source}: network must be lowercase letters, digits and dashes "
                          f"(at most 63), got {network!r}")
    listen = tuple(flat.get("p2p.listen", cfg.listen))
    if not listen:
        raise ConfigError(f"{source}: p2p.listen needs at least one address, e.g. "
                          "\"/ip4/127.0.0.1/tcp/4001\"")
    for addr in listen:
        if not re.match(r"^/ip[46]/[^/]+/tcp/\d{1,5}$", addr):
            raise ConfigError(f"{source}: p2p.listen address {addr!r} must look like "
                              "\"/ip4/127.0.0.1/tcp/4001\"")
    bootstrap = tuple(flat.get("p2p.bootstrap", ()))
    for addr in bootstrap:
        if "/p2p/" not in addr:
            raise ConfigError(f"{source}: bootstrap address {addr!r} must end in /p2p/<node id>")
    announce = tuple(flat.get("p2p.announce", ()))
    for addr in announce:
        if not re.match(r"^/(ip[46]|dns[46]?)/[^/]+/tcp/\d{1,5}$", addr):
            raise ConfigError(f"{source}: p2p.announce address {addr!r} must look like "
                              "\"/ip4/203.0.113.7/tcp/4001\" (your public address and port)")
    vol = VolunteerConfig()
    share = float(flat.get("volunteer.cpu_share", vol.cpu_share))
    if not 0 < share <= 1:
        raise ConfigError(f"{source}: volunteer.cpu_share must be in (0, 1], got {share}")
    mem = flat.get("volunteer.max_memory_mb", vol.max_memory_mb)
    if mem < 16:
        raise ConfigError(f"{source}: volunteer.max_memory_mb must be at least 16, got {mem}")
    hours = flat.get("volunteer.hours", "")
    if hours and not _HOURS.match(hours):
        raise ConfigError(f"{source}: volunteer.hours must look like \"22:00-07:00\", got {hours!r}")
    sync = flat.get("storage.sync", cfg.storage_sync)
    if sync not in ("normal", "full"):
        raise ConfigError(f"{source}: storage.sync must be \"normal\" or \"full\", got {sync!r}")
    level = flat.get("log.level", cfg.log_level).lower()
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{source}: log.level must be debug, info, warning or error, got {level!r}")
    ports = {"ui.port": cfg.ui_port, "metrics.port": cfg.metrics_port}
    for key in ports:
        port = flat.get(key, ports[key])
        if not 0 <= port <= 65535:
            raise ConfigError(f"{source}: {key} must be a TCP port 0-65535 (0: off), got {port}")
        ports[key] = port
    return replace(
        cfg,
        ui_port=ports["ui.port"],
        metrics_port=ports["metrics.port"],
        network=network,
        listen=listen,
        bootstrap=bootstrap,
        announce=announce,
        relay_service=flat.get("p2p.relay_service", cfg.relay_service),
        genesis=_path(flat["genesis"], base) if "genesis" in flat else None,
        volunteer=VolunteerConfig(share, mem, flat.get("volunteer.idle_only", False), hours,
                                  flat.get("volunteer.domain", "")[:128],
                                  flat.get("volunteer.python", True),
                                  flat.get("volunteer.python_fetch", True),
                                  _path(flat["volunteer.python_cache"], base)
                                  if "volunteer.python_cache" in flat else None),
        storage_sync=sync,
        log_level=level,
        log_file=_path(flat["log.file"], base) if "log.file" in flat else None,
        attest_tcti=flat.get("attestation.tcti") or None,
        trusted_ek_cas=tuple(_path(p, base) for p in flat.get("attestation.trusted_ek_cas", [])),
    )


MAX_PEM_BYTES = 1 << 20


def load_trusted_cas(paths: tuple[Path, ...]) -> tuple[Any, ...]:
    """The certificates in ``attestation.trusted_ek_cas``, each file read with a cap."""
    from daemon.attest.verify import load_trusted_certificates

    certs: list[Any] = []
    for path in paths:
        try:
            certs += load_trusted_certificates([read_capped(path, MAX_PEM_BYTES)])
        except UserFileError as err:
            raise ConfigError(f"attestation.trusted_ek_cas names {path}, which {err}") from None
        except ValueError as err:
            raise ConfigError(f"attestation.trusted_ek_cas: {path} holds no PEM certificate: "
                              f"{err}") from None
    return tuple(certs)

"""The volunteer's settings as the daemon holds them while it runs, and where each one came from.

Theory of operation: the config file (and flags) give the settings a daemon starts with. The
owner may change four of them while it runs (``novacron settings``, the local web page):
``cpu_share``, ``max_memory_mb``, ``hours`` and ``idle_only``, and may suspend the node. Those
changes are kept in the node's database (namespace ``owner``) and win over the file on the next
start too, so a setting the owner changed does not silently jump back after a restart; `novacron
settings --reset` drops them and the file rules again. ``status`` shows each setting's source.

Pure: validation and merging take values and return values; ``SettingsStore`` is the only part
that touches the database.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import msgpack

from daemon.config import VolunteerConfig
from daemon.errors import DaemonError
from daemon.runtime.volunteer import PrefsError, VolunteerPrefs, parse_hours
from daemon.storage.db import Database

LIVE = ("cpu_share", "max_memory_mb", "hours", "idle_only")
"""The settings the owner may change while the daemon runs."""

_NS = "owner"


class SettingsError(DaemonError, ValueError):
    """A setting the owner gave wrongly: one line naming it and the fix."""


@dataclass(frozen=True, slots=True)
class Settings:
    cpu_share: float
    max_memory_mb: int
    hours: str
    idle_only: bool

    @classmethod
    def from_config(cls, vol: VolunteerConfig) -> Settings:
        return cls(vol.cpu_share, vol.max_memory_mb, vol.hours, vol.idle_only)

    def prefs(self) -> VolunteerPrefs:
        return VolunteerPrefs(cpu_share=self.cpu_share, hours=parse_hours(self.hours),
                              idle_only=self.idle_only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(changes: dict[str, Any]) -> dict[str, Any]:
    """Check the owner's changes (names and values); returns them normalised, or raises
    ``SettingsError`` with one line."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in LIVE:
            raise SettingsError(f"{name!r} cannot be changed while the daemon runs (these can: "
                                f"{', '.join(LIVE)})")
        if name == "cpu_share":
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value <= 1:
                raise SettingsError(f"cpu_share must be a fraction of the machine in (0, 1], "
                                    f"e.g. 0.25, got {value!r}")
            out[name] = float(value)
        elif name == "max_memory_mb":
            if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 1 << 22:
                raise SettingsError(f"max_memory_mb must be whole megabytes, at least 16, "
                                    f"got {value!r}")
            out[name] = value
        elif name == "hours":
            if not isinstance(value, str):
                raise SettingsError(f"hours must be text like \"22:00-07:00\" (or \"\" for any "
                                    f"time), got {value!r}")
            try:
                parse_hours(value.strip())
            except PrefsError as err:
                raise SettingsError(str(err)) from None
            out[name] = value.strip()
        elif name == "idle_only":
            if not isinstance(value, bool):
                raise SettingsError(f"idle_only must be true or false, got {value!r}")
            out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class Suspension:
    since: float  # wall-clock seconds
    by: str  # "cli", "web page", ...

    def reason(self) -> str:
        return (f"suspended by the owner since {time.strftime('%Y-%m-%d %H:%M', time.localtime(self.since))}"
                " (`novacron resume` to take tasks again)")


class SettingsStore:
    """The owner's changes and suspension, durable in the node's database."""

    def __init__(self, db: Database, base: Settings) -> None:
        self.db = db
        self.base = base
        raw = db.get(_NS, "settings")
        stored = msgpack.unpackb(raw) if raw else {}
        try:
            self.overrides = validate({k: v for k, v in stored.items() if k in LIVE})
        except SettingsError:
            self.overrides = {}  # written by us, so only a hand-edited database gets here
        raw = db.get(_NS, "suspended")
        self.suspension = Suspension(*msgpack.unpackb(raw)) if raw else None

    @property
    def current(self) -> Settings:
        return replace(self.base, **self.overrides)

    def sources(self) -> dict[str, str]:
        return {f.name: "changed by the owner" if f.name in self.overrides else "config file"
                for f in fields(Settings)}

    def change(self, changes: dict[str, Any]) -> Settings:
        """Validate, keep and return the new settings (a value equal to the file's drops the
        override, so the file rules that setting again)."""
        checked = validate(changes)
        overrides = dict(self.overrides)
        for name, value in checked.items():
            if getattr(self.base, name) == value:
                overrides.pop(name, None)
            else:
                overrides[name] = value
        replace(self.base, **overrides).prefs()  # cannot fail after validate; keeps it so
        self.overrides = overrides
        self.db.put(_NS, "settings", msgpack.packb(overrides))
        return self.current

    def reset(self) -> Settings:
        self.overrides = {}
        self.db.delete(_NS, "settings")
        return self.current

    def suspend(self, by: str, now: float) -> Suspension:
        if self.suspension is None:
            self.suspension = Suspension(now, by)
            self.db.put(_NS, "suspended", msgpack.packb([now, by]))
        return self.suspension

    def resume(self) -> bool:
        was = self.suspension is not None
        self.suspension = None
        self.db.delete(_NS, "suspended")
        return was

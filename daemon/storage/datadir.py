"""The node's data directory: ``$NOVACRON_HOME``, else ``$XDG_DATA_HOME/novacron``."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    env = os.environ.get("NOVACRON_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "novacron"


def ensure_data_dir(path: Path) -> Path:
    """Create the data directory (mode 0700: it holds the node's secret key)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path

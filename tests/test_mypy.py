"""``mypy --strict`` holds on the pure packages (settings and the list in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_pure_packages_are_mypy_strict_clean(tmp_path: Path) -> None:
    import importlib.util

    assert importlib.util.find_spec("mypy"), "mypy is missing: run scripts/setup.sh (test extra)"
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout

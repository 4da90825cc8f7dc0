"""Fixtures shared across the suite.

``python_cache``: the machine's compiled Python interpreter (``daemon.runtime.interpreter``).
The first test that needs it compiles it, once per machine (2-3 minutes), in a child process
and under the cache's lock, so parallel test processes and testnet daemons never compile it
twice; every later run loads it. ``scripts/setup.sh`` fetches the interpreter's files; a
missing file fails the test with the fix rather than skipping it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Daemons started by tests use the machine's interpreter cache and never download it.
os.environ["NOVACRON_PYTHON_FETCH"] = "0"


@pytest.fixture(scope="session")
def python_cache() -> Path:
    from daemon.runtime import interpreter

    cache = interpreter.default_cache_dir()
    if not interpreter.is_compiled(cache):
        run = subprocess.run([sys.executable, "-m", "daemon.runtime.interpreter", "compile",
                              "--cache-dir", str(cache)], cwd=ROOT, capture_output=True,
                             text=True)
        if run.returncode != 0:
            pytest.fail(f"cannot prepare the Python runtime (run scripts/setup.sh): "
                        f"{run.stderr.strip()[-500:]}")
    return cache

"""The relay runs ahead of the nodes even where the CPU is shared between sessions first
(autogroup scheduling), where a process's own nice counts only inside its session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testnet.wan.relay import AUTOGROUP, AUTOGROUP_PRIORITY

ROOT = Path(__file__).resolve().parents[3]

needs_root_and_autogroup = pytest.mark.skipif(
    os.geteuid() != 0 or not AUTOGROUP.exists(),
    reason="needs root and a kernel with autogroup scheduling")

PROBE = ("from testnet.wan.relay import _run_ahead_of_the_nodes\n"
         "_run_ahead_of_the_nodes()\n"
         "print(open('/proc/self/autogroup').read(), end='')\n")


@needs_root_and_autogroup
def test_the_relay_raises_its_sessions_group_not_only_itself() -> None:
    # A session of its own, as the launcher starts the relay: the group it raises is its own.
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, start_new_session=True, check=True)
    assert out.stdout.split()[-2:] == ["nice", str(AUTOGROUP_PRIORITY)], out.stdout
    assert not out.stderr


@needs_root_and_autogroup
def test_our_own_session_is_left_alone() -> None:
    before = AUTOGROUP.read_text()
    subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                   timeout=60, start_new_session=True, check=True)
    assert AUTOGROUP.read_text() == before

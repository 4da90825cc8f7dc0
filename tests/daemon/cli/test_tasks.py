"""``novacron try``: one task in the volunteers' sandbox, as a researcher runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def novacron(*args: str, stdin: str = "", cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], input=stdin, cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "HOME": str(Path.home())})


def test_try_a_c_module_prints_its_output_and_fuel() -> None:
    res = novacron("try", "examples/pi/pi.wasm", "--input", "7 1000")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "763 1000\n"
    assert res.stderr.startswith("OK: ok; fuel 130,829;")


def test_try_refuses_a_missing_target_in_one_line() -> None:
    res = novacron("try", "nothing.py")
    assert res.returncode != 0 and res.stderr.count("\n") == 1
    assert "does not exist" in res.stderr


@pytest.mark.slow
def test_try_a_python_script_with_its_files(python_cache: Path) -> None:
    sweep = ROOT / "examples" / "python" / "sweep"
    res = novacron("try", "task.py", "--files", "model.py", "params.json", stdin="1.0 0.5\n",
                   cwd=sweep)
    assert res.returncode == 0, res.stderr
    assert '"amplitude": 2.755942155' in res.stdout
    assert res.stderr.startswith("OK: ok; fuel ")
    again = novacron("try", "job.toml", "--task", "2", cwd=sweep)
    assert again.returncode == 0 and '"damping": 0.25' in again.stdout
    broken = novacron("try", "task.py", stdin="1 1\n", cwd=sweep)  # model.py not shipped
    assert broken.returncode == 1
    assert "EXITED: exited with code 1; stderr: ModuleNotFoundError" in broken.stderr

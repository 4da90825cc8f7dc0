"""The novacron command as a user runs it, without a daemon: --version, `check`, and
`attest` without a data directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from daemon import __version__

ROOT = Path(__file__).resolve().parents[3]


def novacron(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ, **(env or {})})


def test_version():
    res = novacron("--version")
    assert res.returncode == 0 and res.stdout == f"novacron {__version__}\n"


def test_check_reports_every_problem_one_line_each(tmp_path):
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp_path / "pi.wasm")
    bad = tmp_path / "bad.toml"
    bad.write_text('[job]\nmodule = "/dev/zero"\n[inputs]\nrange = [0, 3]\n[limits]\nfuel = -5\n'
                   '[replication]\nreplicas = 3\nquorum = 5\n[schedul]\n')
    res = novacron("check", str(bad))
    assert res.returncode == 1 and res.stdout == ""
    lines = res.stderr.splitlines()
    assert [line.split(": ", 2)[2].split(" ")[0] for line in lines] == \
        ["unknown", "[job]", "[limits]", "[replication]"]
    assert "did you mean [schedule]?" in lines[0] and "character device" in lines[1]
    res = novacron("check", "examples/pi/job.toml")
    assert res.returncode == 0 and res.stderr == ""
    size = (ROOT / "examples" / "pi" / "pi.wasm").stat().st_size
    assert res.stdout == ("examples/pi/job.toml: ok: 'pi-monte-carlo', 100 tasks, 2 replicas "
                          f"(quorum 2), module {size:,} bytes, deadline 1 d\n")
    split = tmp_path / "split.toml"
    split.write_text((ROOT / "examples" / "pi" / "job.toml").read_text()
                     .replace('shards = "auto"', "shards = 2"))
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp_path / "pi.wasm")
    res = novacron("check", str(split))
    assert res.returncode == 0 and "'pi-monte-carlo', 100 tasks, split across 2 shards, 2 " \
        "replicas" in res.stdout, res.stdout
    res = novacron("check", "/dev/zero")
    assert res.returncode == 1
    assert res.stderr == "novacron: job spec /dev/zero is a character device, not a regular file\n"


def test_attest_without_a_data_dir_writes_nothing(tmp_path):
    home = tmp_path / "nowhere"
    res = novacron("attest", env={"NOVACRON_HOME": str(home)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("attestation report for node 12D3KooW")
    assert res.stderr.startswith(f"novacron: no node key in {home}: this report is bound to a "
                                 "throwaway key")
    assert not home.exists()

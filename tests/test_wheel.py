"""Install without a clone: the project builds a wheel, the wheel installs into a fresh venv,
and a daemon started from that venv (outside the repository) comes up and serves its page.

The wheel itself is installed with ``--no-deps --no-index``; its dependencies are lent from the
test's own environment by a ``.pth`` line, because downloading and building them (libp2p,
wasmtime, numpy...) takes minutes. What the test proves is the wheel's part: every module and
data file it needs is inside it, and its console script works with no repository around.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

from tests.daemon.web.webdriver import free_port

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "daemon", "protocol", "crdt", "consensus", "testnet")


def run(*cmd: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    res = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)}: {res.stderr[-2000:]}"
    return res.stdout


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs_a_daemon(tmp_path):
    src = tmp_path / "src"  # a copy, so building leaves the checkout clean
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", str(dist), str(src), cwd=tmp_path)
    (wheel,) = dist.glob("novacron-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    py = venv / "bin" / "python"
    run(str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel), cwd=tmp_path)
    site = Path(run(str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                    cwd=tmp_path).strip())
    (site / "zz_lent_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NOVACRON_HOME")}
    away = tmp_path / "elsewhere"
    away.mkdir()
    where = run(str(py), "-c", "import daemon; print(daemon.__file__)", cwd=away, env=env)
    assert where.startswith(str(site)), where  # the wheel's copy, not the repository's

    novacron = str(venv / "bin" / "novacron")
    data, port = tmp_path / "node", free_port()
    config = tmp_path / "node.toml"
    config.write_text(f'data_dir = "{data}"\n[p2p]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n'
                      f'[ui]\nport = {port}\n')
    proc = subprocess.Popen([novacron, "daemon", "--config", str(config)], cwd=away, env=env,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while True:
            res = subprocess.run([novacron, "status", "--json", "--data-dir", str(data)],
                                 cwd=away, env=env, capture_output=True, text=True)
            if res.returncode == 0 and json.loads(res.stdout)["health"] == "ok":
                break
            assert proc.poll() is None, "the daemon from the wheel exited"
            assert time.monotonic() < deadline, f"not up: {res.stdout[-300:]} {res.stderr}"
            time.sleep(0.2)  # polling a real process
        st = json.loads(res.stdout)
        assert st["services"]["runtime"]["workers"] >= 1  # worker processes from the wheel too
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/page.js", timeout=10) as r:
            assert b"setInterval" in r.read()  # the page's data files are in the wheel
        out = run(novacron, "stop", "--data-dir", str(data), cwd=away, env=env)
        assert out.startswith("stopped daemon ")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

import subprocess
import sys


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "daemon", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_identity_creates_then_reuses_key(tmp_path):
    first = run_cli("identity", "--data-dir", str(tmp_path / "n"))
    assert first.returncode == 0, first.stderr
    assert "(created)" in first.stdout
    node_id = first.stdout.split()[2]
    assert node_id.startswith("12D3KooW")
    second = run_cli("identity", "--data-dir", str(tmp_path / "n"))
    assert second.returncode == 0 and node_id in second.stdout and "(created)" not in second.stdout


def test_damaged_key_is_one_line_error(tmp_path):
    d = tmp_path / "n"
    d.mkdir()
    (d / "node.key").write_bytes(b"junk\n")
    (d / "node.key").chmod(0o600)
    res = run_cli("identity", "--data-dir", str(d))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("novacron: ")
    assert "Traceback" not in res.stderr

import subprocess
import sys
import textwrap

import pytest

from daemon.storage.db import Database, StorageError


def test_put_get_scan_delete(tmp_path):
    db = Database(tmp_path / "n.db")
    db.put("pbft/0", b"\x00\x01", b"a")
    db.put_many("pbft/0", [(b"\x00\x02", b"b"), (b"\x01\x00", b"c")])
    db.put("other", b"\x00\x01", b"z")
    assert db.get("pbft/0", b"\x00\x01") == b"a"
    assert [k for k, _ in db.scan("pbft/0", b"\x00")] == [b"\x00\x01", b"\x00\x02"]
    db.delete_range("pbft/0", b"\x00", b"\x01")
    assert db.scan("pbft/0") == [(b"\x01\x00", b"c")]
    assert db.get("other", b"\x00\x01") == b"z"
    db.close()


def test_transaction_rolls_back(tmp_path):
    db = Database(tmp_path / "n.db")
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.put("ns", "k", b"v")
            raise RuntimeError
    assert db.get("ns", "k") is None


def test_committed_writes_survive_sigkill(tmp_path):
    """A child commits, reports, and is SIGKILLed at once; the parent reads everything back."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(__import__('pathlib').Path.cwd())!r})
        from daemon.storage.db import Database
        db = Database(__import__('pathlib').Path({str(tmp_path / 'n.db')!r}))
        for i in range(200):
            with db.transaction():
                db.put("ns", i.to_bytes(4, "big"), b"x" * 100)
        print("acked", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "acked" and out.returncode == -9
    db = Database(tmp_path / "n.db")
    assert len(db.scan("ns")) == 200


def test_damaged_file_is_one_clear_error(tmp_path):
    (tmp_path / "n.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match="move it away"):
        Database(tmp_path / "n.db")

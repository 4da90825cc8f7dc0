"""The FL task's error feedback, run here by CPython (the sandbox runs the same file; replicas
agreeing on real volunteers is ``tests/daemon/jobs/test_sticky_worker.py``).

EF's invariant, checked on the task's own bytes: what round 2 sends plus the residual it keeps
equals round 2's exact update (the float32 run of the same input) plus round 1's residual.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protocol import sticky

ROOT = Path(__file__).resolve().parents[3]
pytest.importorskip("sklearn", reason="the FL example's data is scikit-learn's digits")


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    from daemon.flrun.stage import read_job
    base = tmp_path_factory.mktemp("fl")
    work = base / "fl"
    shutil.copytree(ROOT / "examples" / "fl", work)
    subprocess.run([sys.executable, str(work / "make_data.py"), "--shards", "10", "--dir",
                    str(work)], check=True, capture_output=True)
    stage = base / "stage"
    for name, data in read_job(work / "job.toml").task.items():
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_bytes(data)
    shutil.copy(work / "init.npz", stage / "global.npz")
    (stage / "sticky").mkdir()
    return stage


def task(stage: Path, line: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", "-c",
                           "import sys, runpy; sys.path.insert(0, '.');"
                           " runpy.run_path('fl_task.py', run_name='__main__')"],
                          input=line.encode(), cwd=stage, capture_output=True, check=check)


def split(stage: Path, out: bytes):
    from daemon.fl import decode_update
    kept, rest = sticky.split_kept(out, keep=1 << 24)
    line, _, body = rest.partition(b"\n")
    with np.load(stage / "global.npz") as z:
        like = {k: z[k].astype(np.float32) for k in z.files}
    flat = None if kept is None else np.frombuffer(kept, "<f4")
    return kept, json.loads(line), decode_update(body, like), flat, like


def vector(update, like):
    return np.concatenate([update[k].reshape(-1).astype(np.float64) for k in sorted(like)])


def test_the_residual_is_kept_named_and_carried_into_the_next_update(stage):
    r1 = task(stage, "shards/003.npz 1 int4 1 7 ef=new").stdout
    assert r1 == task(stage, "shards/003.npz 1 int4 1 7 ef=new").stdout  # replicas agree
    kept1, head1, _, e1, like = split(stage, r1)
    assert head1["ef"]["sha256"] == hashlib.sha256(kept1).hexdigest()
    assert head1["ef"]["size"] == len(kept1) == 4 * sum(a.size for a in like.values())
    (stage / "sticky" / "residual").write_bytes(kept1)
    line2 = f"shards/003.npz 2 int4 1 7 ef={head1['ef']['sha256']}"
    kept2, head2, sent2, e2, _ = split(stage, task(stage, line2).stdout)
    assert head2["ef"]["applied"] == head1["ef"]["sha256"]
    _, _, exact2, _, _ = split(stage, task(stage, "shards/003.npz 2 float32 1 7").stdout)
    # sent + kept == exact update + the residual carried in (float32 rounding apart)
    np.testing.assert_allclose(vector(sent2, like) + e2, vector(exact2, like) + e1, atol=1e-6)
    # without EF the same round sends other bytes, and keeps nothing
    plain = task(stage, "shards/003.npz 2 int4 1 7").stdout
    kept, head, sent, _, _ = split(stage, plain)
    assert kept is None and "ef" not in head
    assert not np.allclose(vector(sent, like), vector(sent2, like))


def test_a_residual_that_is_not_the_named_one_stops_the_task(stage):
    (stage / "sticky" / "residual").write_bytes(b"\0" * 16)
    res = task(stage, f"shards/003.npz 2 int4 1 7 ef={'ab' * 32}", check=False)
    assert res.returncode != 0 and b"is not the residual" in res.stderr

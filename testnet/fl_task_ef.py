"""The real FL task's error feedback, measured (``scripts/bench_fl.py``'s ``task_ef`` section).

FedAvg rounds over the FL example (scikit-learn's digits, two digits per shard) where every
client update is the output of ``daemon/fl/sandbox/fl_task.py`` itself, with the files the
sandbox gets (the staged job: ``zstandard`` stand-in, shipped codec), and the residual carried
exactly as a volunteer carries it: the task's kept frame is split off (as ``protocol.sticky``
does),
kept per client, and given back as ``sticky/residual`` with ``ef=<digest>`` in the client's next
round. Run by CPython in one child process per variant (the sandbox runs the same file; what
differs is speed, not bytes). Only the network is left out: every client is always reachable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

DRIVER = r"""
import hashlib, io, json, random, sys
import msgpack
import numpy as np
sys.path.insert(0, '.')
import fl_task, train
from protocol.tensor.codec import decode_tensor
KEEP = fl_task.KEEP_MAGIC


def split_kept(output, keep):  # protocol.sticky.split_kept (the stage ships the codec only)
    if keep <= 0 or not output.startswith(KEEP):
        return None, output
    n = int.from_bytes(output[len(KEEP):len(KEEP) + 4], 'big')
    start = len(KEEP) + 4
    return output[start:start + n], output[start + n:]


def decode_update(body, like):
    entries = msgpack.unpackb(body, raw=False)
    return {k: decode_tensor(entries[k], max_elements=like[k].size,
                             max_bytes=like[k].nbytes).reshape(like[k].shape) for k in like}


def fedavg(updates, weights):
    w = np.array(weights) / sum(weights)
    return {k: sum(wi * u[k] for wi, u in zip(w, updates)).astype(np.float32)
            for k in updates[0]}

rounds, shards, per_round, codec, ef, seed = ARGS
with np.load('global.npz') as z:
    model = {k: z[k].astype(np.float32) for k in z.files}
keep = 4 * sum(a.size for a in model.values())
kept, rows, pick = {}, [], random.Random(seed)
for rnd in range(1, rounds + 1):
    np.savez('global.npz', **model)
    chosen = sorted(pick.sample(range(shards), per_round))
    updates, weights, sent = [], [], 0
    for c in chosen:
        line = f'shards/{c:03d}.npz {rnd} {codec} 1 {seed}'
        if ef:
            if c in kept:
                open('sticky/residual', 'wb').write(kept[c])
                line += ' ef=' + hashlib.sha256(kept[c]).hexdigest()
            else:
                line += ' ef=new'
        out = io.BytesIO()
        sys.stdin = io.TextIOWrapper(io.BytesIO(line.encode()))
        sys.stdout = wrapper = io.TextIOWrapper(out)
        fl_task.main()
        wrapper.flush()
        data = out.getvalue()
        wrapper.detach()
        sys.stdin, sys.stdout = sys.__stdin__, sys.__stdout__
        left, output = split_kept(data, keep if ef else 0)
        if left is not None:
            kept[c] = left
        head, _, body = output.partition(b'\n')
        updates.append(decode_update(body, model))
        weights.append(float(json.loads(head)['samples']))
        sent += len(output)
    step = fedavg(updates, weights)
    model = {k: model[k] + step[k] for k in model}
    rows.append({'accuracy': round(float(train.evaluate(model, 'test.npz')['accuracy']), 4),
                 'bytes': sent})
print(json.dumps({'rows': rows, 'kept_bytes_per_client': keep if ef else 0,
                  'clients_holding_a_residual': len(kept)}))
"""


def run(rounds: int = 20, shards: int = 10, per_round: int = 5, codec: str = "sign1",
        ef: bool = True, seed: int = 1) -> dict[str, Any]:
    """One run; the same seed draws the same clients and trains the same way with and
    without EF."""
    from daemon.flrun.stage import read_job

    with tempfile.TemporaryDirectory(prefix="novacron-fl-task-ef-") as tmp:
        work, stage = Path(tmp) / "fl", Path(tmp) / "stage"
        shutil.copytree(ROOT / "examples" / "fl", work)
        subprocess.run([sys.executable, str(work / "make_data.py"), "--shards", str(shards),
                        "--dir", str(work), "--seed", str(seed)], check=True,
                       capture_output=True)
        for name, data in read_job(work / "job.toml").task.items():  # the round's bundle
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_bytes(data)
        shutil.copy(work / "init.npz", stage / "global.npz")
        shutil.copy(work / "test.npz", stage / "test.npz")
        (stage / "sticky").mkdir()
        code = DRIVER.replace("ROOT", repr(str(ROOT))).replace(
            "ARGS", repr((rounds, shards, per_round, codec, ef, seed)))
        res = subprocess.run([sys.executable, "-I", "-c", code], cwd=stage,
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"the task driver failed: {res.stderr.strip()[-800:]}")
        return dict(json.loads(res.stdout))


def compare(rounds: int = 20, codec: str = "sign1", seed: int = 1) -> dict[str, Any]:
    """The real task at a lossy level with and without error feedback, and float32."""
    out: dict[str, Any] = {"codec": codec, "rounds": rounds, "clients": 10, "per_round": 5}
    for name, (c, ef) in {"float32": ("float32", False), "no_ef": (codec, False),
                          "ef": (codec, True)}.items():
        r = run(rounds=rounds, codec=c, ef=ef, seed=seed)
        acc = [row["accuracy"] for row in r["rows"]]
        out[name] = {"final_accuracy": acc[-1], "last5_accuracy": round(sum(acc[-5:]) / 5, 4),
                     "update_bytes": sum(row["bytes"] for row in r["rows"]),
                     "accuracy_per_round": acc}
        if ef:
            out[name]["kept_bytes_per_client"] = r["kept_bytes_per_client"]
            out[name]["clients_holding_a_residual"] = r["clients_holding_a_residual"]
    return out

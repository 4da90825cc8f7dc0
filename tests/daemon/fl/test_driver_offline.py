"""The FL driver's offline parts: the job's files as the node reads them, the shard list, the
task script run by CPython, the round planner's links, user mistakes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from daemon.fl import FLError, decode_update
from daemon.fl.rounds import ClientState, parse_output, plan_round, round_files, why
from daemon.flrun.stage import find_shards, load_spec, read_job

ROOT = Path(__file__).resolve().parents[3]


def _job(tmp_path, **lines):
    (tmp_path / "shards").mkdir()
    for i in range(3):
        np.savez(tmp_path / "shards" / f"{i}.npz", x=np.zeros((2, 64)), y=np.zeros(2))
    np.savez(tmp_path / "init.npz", w=np.zeros((2, 2)))
    np.savez(tmp_path / "test.npz", x=np.zeros((2, 64)), y=np.zeros(2))
    (tmp_path / "train.py").write_text("def train(*a): pass\ndef evaluate(*a): pass\n")
    text = ('[fl]\nscript = "train.py"\nmodel = "init.npz"\nshards = ["shards/*.npz"]\n'
            'test = "test.npz"\n' + "".join(f"{k} = {v}\n" for k, v in lines.items()))
    (tmp_path / "job.toml").write_text(text)
    return load_spec(tmp_path / "job.toml")


def _stage(stage, files):
    """Write a round's files where CPython can run the task script as the sandbox does."""
    for name, data in files.items():
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        (stage / name).write_bytes(data)


def _parse_output(output, like):
    return parse_output(output, like)


def test_stage_carries_the_codec_and_the_shards(tmp_path):
    _job(tmp_path)
    job = read_job(tmp_path / "job.toml")
    files = job.task
    assert "zstandard.py" in files and "train.py" in files and "fl_task.py" in files
    assert "protocol/tensor/quant.py" in files and "shards/2.npz" in files
    assert "test.npz" not in files  # the test set never travels with a task
    stage = tmp_path / "stage"
    stage.mkdir()
    _stage(stage, files)
    # the staged codec, with the raw stand-in for zstd, writes bytes the real decoder reads
    code = ("import numpy as np, sys; sys.path.insert(0, '.');"
            "from protocol.tensor.codec import encode_tensor, CodecSpec;"
            "from protocol.tensor.wire import Codec;"
            "sys.stdout.buffer.write(encode_tensor(np.arange(300, dtype=np.float32) / 7,"
            " CodecSpec(Codec.INT8)))")
    out = subprocess.run([sys.executable, "-I", "-c", code], cwd=stage, capture_output=True,
                         check=True).stdout
    import msgpack
    update = decode_update(msgpack.packb({"w": out}), {"w": np.zeros(300, np.float32)})
    np.testing.assert_allclose(update["w"], np.arange(300) / 7, atol=0.2)


def test_shard_patterns_must_match(tmp_path):
    spec = _job(tmp_path)
    assert find_shards(tmp_path, spec) == ["shards/0.npz", "shards/1.npz", "shards/2.npz"]
    (tmp_path / "job.toml").write_text((tmp_path / "job.toml").read_text()
                                       .replace("shards/*.npz", "data/*.npz"))
    with pytest.raises(FLError, match="matches no file"):
        find_shards(tmp_path, load_spec(tmp_path / "job.toml"))


def test_job_mistakes_are_one_line_and_the_script_is_read_not_run(tmp_path):
    _job(tmp_path, clients_per_round=4)
    with pytest.raises(FLError, match="clients_per_round is 4 but the shards patterns match 3"):
        read_job(tmp_path / "job.toml")
    (tmp_path / "job.toml").write_text((tmp_path / "job.toml").read_text()
                                       .replace("clients_per_round = 4", ""))
    (tmp_path / "train.py").write_text("raise SystemExit('ran!')\ndef train(): pass\n")
    with pytest.raises(FLError, match=r"must define evaluate\(\)"):
        read_job(tmp_path / "job.toml")
    (tmp_path / "train.py").write_text("def train(:\n")
    with pytest.raises(FLError, match="does not parse") as err:
        read_job(tmp_path / "job.toml")
    assert "\n" not in str(err.value)
    with pytest.raises(FLError, match="absolute path"):
        read_job(Path("job.toml"))


def test_output_without_its_json_line_is_refused():
    with pytest.raises(FLError, match="JSON line"):
        _parse_output(b"\x80", {"w": np.zeros(1, np.float32)})


def test_cli_check_prints_one_line(tmp_path):
    _job(tmp_path)
    (tmp_path / "job.toml").write_text((tmp_path / "job.toml").read_text() + "rounds = 0\n")
    res = subprocess.run([sys.executable, "-c", "import sys; from daemon.cli import main;"
                          " sys.exit(main())", "fl", "check",
                          str(tmp_path / "job.toml")], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0 and "[fl] rounds must be" in res.stderr


def test_a_round_ships_only_its_chosen_shards():
    from daemon.fl.rounds import Planned, RoundPlan
    files = {n: b"" for n in ["protocol/errors.py", "shards/0.npz", "shards/1.npz",
                              "shards/2.npz", "train.py"]}
    shards = ["shards/0.npz", "shards/1.npz", "shards/2.npz"]
    plan = RoundPlan(1, (Planned("shards/0.npz", "", None), Planned("shards/2.npz", "", None)))
    assert sorted(round_files(files, shards, plan, b"m")) == [
        "global.npz", "protocol/errors.py", "shards/0.npz", "shards/2.npz", "train.py"]


def test_the_task_script_trains_and_encodes_fedavg_and_fedprox(tmp_path):
    """fl_task.py run here by CPython (the sandbox runs the same file): the update decodes
    against the model, the same input gives the same bytes, and FedProx's mu pulls it in."""
    import shutil
    pytest.importorskip("sklearn")
    work = tmp_path / "fl"
    shutil.copytree(ROOT / "examples" / "fl", work)
    subprocess.run([sys.executable, str(work / "make_data.py"), "--shards", "5", "--dir",
                    str(work)], check=True)
    spec = load_spec(work / "job.toml")
    stage = tmp_path / "stage"
    stage.mkdir()
    _stage(stage, read_job(work / "job.toml").task)
    shutil.copy(work / "init.npz", stage / "global.npz")
    with np.load(work / "init.npz") as z:
        like = {k: z[k] for k in z.files}

    def task(line):
        return subprocess.run([sys.executable, "-I", "-c",
                               "import sys, runpy; sys.path.insert(0, '.');"
                               " runpy.run_path('fl_task.py', run_name='__main__')"],
                              input=line.encode(), cwd=stage, capture_output=True,
                              check=True).stdout

    plain = task("shards/001.npz 1 int8 2 7")
    assert plain == task("shards/001.npz 1 int8 2 7")
    head, update = _parse_output(plain, like)
    assert head["shard"] == "shards/001.npz" and head["samples"] > 100
    _, prox = _parse_output(task("shards/001.npz 1 int8 2 7 5.0"), like)
    size = lambda u: float(np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in u.values())))  # noqa: E731
    assert 0 < size(prox) < size(update)


def test_model_digest_is_stable_and_sees_every_change():
    from daemon.fl.rounds import model_digest as _model_digest
    m = {"b": np.zeros(3, np.float32), "a": np.ones((2, 2), np.float32)}
    d = _model_digest(m)
    assert d == _model_digest(dict(reversed(list(m.items()))))
    assert d != _model_digest({**m, "a": np.ones((4,), np.float32)})
    changed = {**m, "b": np.array([0, 0, 1e-7], np.float32)}
    assert d != _model_digest(changed)


def test_levels_follow_measured_links_and_replicas_agree(tmp_path):
    """The chain a real round runs, with measured estimates: two volunteers' link tables are
    fed 256 KiB transfers from the submitter (20 MB/s and 60 kB/s), published as summaries,
    read back as the predicted link of each to the submitter, planned on, and the task script
    (the sandbox's file, run here by CPython) takes a different level for each: the slow
    link's update is smaller. The same input gives the same bytes (what replicas need)."""
    import shutil
    pytest.importorskip("sklearn")
    from daemon.fl.linkplan import client_link
    from daemon.links import LinkTable, predict, summarize
    from daemon.links.summary import from_wire, to_wire

    submitter, fast, slow = "S" * 52, "F" * 52, "L" * 52
    summaries = {}
    for node, rate in ((fast, 20e6), (slow, 6e4)):
        table = LinkTable()
        table.rtt(submitter, 0.03, 0.0)
        for k in range(6):
            table.observe(submitter, 256 * 1024, 0.03 + 256 * 1024 / rate, float(k))
        wire = to_wire(summarize(table, node, now=6.0, now_ms=10_000))
        summaries[node] = from_wire(wire, node)  # as any node reads it from the soft state
    links = {n: predict(summaries, n, submitter, 10_000).as_dict() for n in (fast, slow)}

    work = tmp_path / "fl"
    shutil.copytree(ROOT / "examples" / "fl", work)
    subprocess.run([sys.executable, str(work / "make_data.py"), "--shards", "5", "--dir",
                    str(work)], check=True)
    spec = load_spec(work / "job.toml")
    assert spec.adaptive
    stage = tmp_path / "stage"
    stage.mkdir()
    _stage(stage, read_job(work / "job.toml").task)
    shutil.copy(work / "init.npz", stage / "global.npz")
    with np.load(work / "init.npz") as z:
        like = {k: z[k] for k in z.files}

    def task(line):
        return subprocess.run([sys.executable, "-I", "-c",
                               "import sys, runpy; sys.path.insert(0, '.');"
                               " runpy.run_path('fl_task.py', run_name='__main__')"],
                              input=line.encode(), cwd=stage, capture_output=True,
                              check=True).stdout

    outputs = {}
    for worker in (fast, slow):
        plan = client_link([worker], [fast, slow], links)
        assert plan.basis == "previous" and plan.node == worker
        line = (f"shards/001.npz 2 {plan.task_field(spec.time_budget_s, spec.error_budget)}"
                f" 1 7")
        outputs[worker] = task(line)
        assert task(line) == outputs[worker]
    (hf, uf), (hs, us) = (_parse_output(outputs[w], like) for w in (fast, slow))
    assert hf["codec"] == "float16" and hs["codec"] in ("int8", "int4"), (hf, hs)
    assert len(outputs[slow]) < 0.7 * len(outputs[fast])
    # each level's row is what the choice saw; the chosen one has the largest reward
    for head in (hf, hs):
        best = max(head["levels"], key=lambda row: row[3])
        assert best[0] == head["codec"] and {r[0] for r in head["levels"]} == {
            "float16", "int8", "int4", "sign1"}
    # the two updates are the same training step, quantized differently
    for name in like:
        np.testing.assert_allclose(us[name], uf[name], atol=0.02 * float(np.abs(uf[name]).max()) + 1e-6)
    # with no earlier workers, 2 replicas among 2 volunteers: one runs on each, the update
    # comes over the faster; and of the client's two earlier workers, the faster counts
    assert client_link([], [fast, slow], links).node == fast
    assert client_link([slow, fast], [fast, slow], links).node == fast
    assert client_link([], [fast, slow], links, replicas=1).node == slow  # the lower median


def test_the_planner_plans_each_shard_on_its_last_workers_and_says_why():
    """The round planner's bookkeeping: a client's carried state names the workers its link
    is planned on; a client without one is planned on the volunteers; a fixed codec skips
    the links altogether."""
    from daemon.fl.spec import parse_fl_spec

    links = {"c": {"low": 5e4, "rtt_ms": 80.0}, "d": {"low": 9e6, "rtt_ms": 2.0},
             "a": {"low": 1e3, "rtt_ms": 900.0}}
    base = {"fl": {"script": "t.py", "model": "m.npz", "shards": ["s/*"], "test": "x.npz",
                   "clients_per_round": 2, "error_feedback": False}}  # EF: test_rounds.py
    spec = parse_fl_spec(base, "job.toml")
    clients = {"s/0": ClientState(("a", "c"))}  # planned on the better: c
    plan = plan_round(spec, ["s/0", "s/1"], 1, clients, links, ["a", "b", "c", "d"])
    assert plan.shards == ["s/0", "s/1"]
    first, second = plan.clients
    assert first.link.basis == "previous" and first.link.node == "c"
    assert first.input == "s/0 1 adaptive/50000/80.0/0.25/0.25 1 1"
    assert second.link.basis == "volunteers"
    w = why(first.link, {"levels": [["int8", 10, 0.01, -0.2]]})
    assert w["link"]["node"] == "c" and "last round's workers" in w["why"]
    fixed = parse_fl_spec({"fl": {**base["fl"], "codec": "int8", "mu": 0.5,
                                  "aggregation": "fedprox"}}, "job.toml")
    plan = plan_round(fixed, ["s/0", "s/1"], 2, clients, links, ["a"])
    assert [c.link for c in plan.clients] == [None, None]
    assert plan.clients[0].input == "s/0 2 int8 1 1 0.5"
    assert why(None, {}) == {"why": "fixed by the job file"}


def test_fl_run_never_mixes_two_runs_in_one_directory(tmp_path):
    """``fl run -o OUT`` names its run in OUT/run.json: OUT is refused without --resume, and
    --resume re-attaches to that run (nothing to resume in a fresh directory); a job file
    changed since the run was submitted (more rounds, say) is refused, not ignored."""
    import hashlib

    from novacron.fl import _earlier

    out = tmp_path / "out"
    job = tmp_path / "job.toml"
    job.write_text("[fl]\nrounds = 3\n")
    assert _earlier(out, False, job) is None
    with pytest.raises(FLError, match="holds no run to resume"):
        _earlier(out, True, job)
    out.mkdir()
    (out / "run.json").write_text('{"run": "fl-abcdef0123456789"}')
    with pytest.raises(FLError, match="already holds run fl-abcdef012345: add --resume"):
        _earlier(out, False, job)
    assert _earlier(out, True, job) == "fl-abcdef0123456789"
    digest = hashlib.sha256(job.read_bytes()).hexdigest()
    (out / "run.json").write_text(f'{{"run": "fl-abcdef0123456789", "job_sha256": "{digest}"}}')
    assert _earlier(out, True, job) == "fl-abcdef0123456789"
    job.write_text("[fl]\nrounds = 6\n")
    with pytest.raises(FLError, match="job.toml changed since run fl-abcdef012345 was submitted"
                                      ".* give another -o directory"):
        _earlier(out, True, job)
    (out / "run.json").unlink()
    (out / "history.json").write_text("[]")  # an older fl run's directory
    with pytest.raises(FLError, match="no run.json naming its run"):
        _earlier(out, True, job)

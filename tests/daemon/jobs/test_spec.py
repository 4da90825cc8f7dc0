import os
import shutil
from pathlib import Path

import pytest

from daemon.jobs.spec import SpecError, load_spec
from protocol.attestation import AttestationLevel

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def jobdir(tmp_path):
    shutil.copy(ROOT / "examples" / "pi" / "pi.wasm", tmp_path / "pi.wasm")
    return tmp_path


def spec(jobdir, text):
    p = jobdir / "job.toml"
    p.write_text(text)
    return p


BASE = '[job]\nmodule = "pi.wasm"\n[inputs]\nrange = [0, 3]\ntemplate = "{i} 100\\n"\n'


def test_examples_load():
    pi = load_spec(ROOT / "examples" / "pi" / "job.toml")
    assert len(pi.inputs) == 100 and pi.inputs[7] == b"7 10000000\n"
    assert (pi.replicas, pi.quorum, pi.memory_pages) == (2, 2, 16 * 16)
    sweep = load_spec(ROOT / "examples" / "sweep" / "job.toml")
    assert len(sweep.inputs) == 1000 and sweep.argv[0] == "sweep"
    assert pi.checkpoint_fuel == 0  # the default interval
    life = load_spec(ROOT / "examples" / "life" / "job.toml")
    assert life.checkpoint_fuel == 500_000_000 and len(life.inputs) == 8


def test_placement_shards_is_auto_unless_a_number_is_given(jobdir):
    assert load_spec(spec(jobdir, BASE)).shards == 0
    assert load_spec(spec(jobdir, BASE + '[placement]\nshards = "auto"\n')).shards == 0
    assert load_spec(spec(jobdir, BASE + "[placement]\nshards = 3\n")).shards == 3


def test_defaults_and_input_kinds(jobdir):
    s = load_spec(spec(jobdir, BASE))
    assert s.inputs == (b"0 100\n", b"1 100\n", b"2 100\n") and s.name == "job"
    assert s.min_attestation is AttestationLevel.NONE and s.deadline_s == 86400
    (jobdir / "in.txt").write_text("a\n\nb\n")
    s = load_spec(spec(jobdir, '[job]\nmodule = "pi.wasm"\n[inputs]\nlines = "in.txt"\n'
                                '[replication]\nreplicas = 3\nquorum = 2\nmin_attestation = "tpm"\n'))
    assert s.inputs == (b"a\n", b"b\n") and (s.replicas, s.quorum) == (3, 2)
    assert s.min_attestation is AttestationLevel.TPM


@pytest.mark.parametrize("extra,match", [
    ("[limits]\nfuel = -5\n", r"\[limits\] fuel must be an integer from 1 to .* \(e.g. fuel = 1_000_000_000\), got -5"),
    ("[limits]\nfuell = 5\n", r"unknown field \[limits\] fuell \(did you mean 'fuel'\?\)"),
    ("[limitz]\nfuel = 5\n", r"unknown section \[limitz\] \(did you mean \[limits\]\?\)"),
    ("[limits]\nwall_s = 0\n", r"\[limits\] wall_s must be a number of seconds"),
    ("[replication]\nreplicas = 2\nquorum = 3\n", r"quorum \(3\) cannot exceed replicas \(2\)"),
    ("[replication]\nmin_attestation = \"gold\"\n", "must be one of none, tpm-unendorsed, tpm, tee"),
    ("[schedule]\ndeadline = \"soon\"\n", r'must be a duration like "90m"'),
    ("[schedule]\ndeadline = \"10s\"\n", "between 1 minute and 30 days"),
    ("[sandbox]\nclock = \"yesterday\"\n", "ISO 8601"),
    ("[result]\ncombine = \"sum\"\n", "must be one of concat, files"),
    ("[checkpoint]\nevery_fuel = 5\n", r"\[checkpoint\] every_fuel must be an integer from 10,000,000"),
    ("[placement]\nshards = \"all\"\n", r'\[placement\] shards must be "auto" or a number of shards'),
    ("[placement]\nshards = 0\n", r"\[placement\] shards must be an integer from 1 to 64"),
    ("[placement]\nshards = 4\n", r"\[placement\] shards \(4\) cannot exceed the job's 3 tasks"),
    ("[placement]\nshard = 2\n", r"unknown field \[placement\] shard \(did you mean 'shards'\?\)"),
])
def test_mistakes_name_field_and_fix(jobdir, extra, match):
    with pytest.raises(SpecError, match=match):
        load_spec(spec(jobdir, BASE + extra))


@pytest.mark.parametrize("text,match", [
    ('[job]\nmodule = "nope.wasm"\n[inputs]\nlist = ["a"]\n', r"\[job\] module names .*nope.wasm, which does not exist"),
    ('[job]\nmodule = "job.toml"\n[inputs]\nlist = ["a"]\n', "is not a WebAssembly module"),
    ('[job]\n[inputs]\nlist = ["a"]\n', r'\[job\] module is required \(e.g. module = "pi.wasm"\)'),
    ('[job]\nmodule = "pi.wasm"\n', "needs exactly one of list, lines or range"),
    ('[job]\nmodule = "pi.wasm"\n[inputs]\nlist = ["a"]\nrange = [0, 2]\n', "got list, range"),
    ('[job]\nmodule = "pi.wasm"\n[inputs]\nrange = [5, 2]\n', "0 <= first < end"),
    ('[job]\nmodule = "pi.wasm"\n[inputs]\nrange = [0, 2]\ntemplate = "x"\n', "must contain {i}"),
    ('[job]\nmodule = "pi.wasm"\n[inputs]\nrange = [0, 200000]\n', "gives 200,000 tasks; the limit is 100,000"),
    ('[job]\nmodule = "pi.wasm"\n[inputs]\nlist = []\n', "gives no tasks"),
    ('[job]\nmodule = "pi.wasm"\nargv = "pi"\n[inputs]\nlist = ["a"]\n', "argv must be a list"),
    ('[job\n', "is not valid TOML"),
])
def test_structural_mistakes(jobdir, text, match):
    with pytest.raises(SpecError, match=match):
        load_spec(spec(jobdir, text))


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "job.toml")
    with pytest.raises(SpecError, match="is a directory"):
        load_spec(tmp_path)


@pytest.mark.parametrize("field", ["module", "lines"])
def test_devices_and_fifos_are_refused_before_reading(jobdir, field):
    """``/dev/zero`` once grew the daemon past 1.5 GB: the limit was checked after reading."""
    os.mkfifo(jobdir / "fifo")
    for named, kind in (("/dev/zero", "a character device"), ("fifo", "a FIFO (named pipe)"),
                        (".", "a directory")):
        text = (f'[job]\nmodule = "{named}"\n[inputs]\nrange = [0, 3]\n' if field == "module"
                else f'[job]\nmodule = "pi.wasm"\n[inputs]\nlines = "{named}"\n')
        with pytest.raises(SpecError) as err:
            load_spec(spec(jobdir, text))
        msg = str(err.value)
        assert "\n" not in msg and f"] {field} names " in msg
        assert f"which is {kind}, not a regular file (give " in msg


def test_oversized_files_are_refused_by_their_size(jobdir, monkeypatch):
    import daemon.jobs.spec as spec_module

    monkeypatch.setattr(spec_module, "MAX_MODULE_BYTES", 1000)
    big = jobdir / "big.wasm"
    big.write_bytes(b"\x00asm\x01\x00\x00\x00" + bytes(2000))
    with pytest.raises(SpecError, match=r"\[job\] module names .*big.wasm, which is 2,008 bytes; "
                                        r"the limit is 1,000$"):
        load_spec(spec(jobdir, '[job]\nmodule = "big.wasm"\n[inputs]\nrange = [0, 3]\n'))
    with pytest.raises(SpecError, match="^job spec /dev/zero is a character device"):
        load_spec(Path("/dev/zero"))

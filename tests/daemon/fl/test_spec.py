import tomllib

import pytest

from daemon.fl import FLError, Rule
from daemon.fl.spec import parse_fl_spec

GOOD = """
[fl]
script = "train.py"
model = "init.npz"
shards = ["shards/*.npz"]
test = "test.npz"
rounds = 3
clients_per_round = 2
aggregation = "trimmed_mean"
trim = 0.25
codec = "int4"
[replication]
replicas = 3
"""


def _parse(text):
    return parse_fl_spec(tomllib.loads(text), "job.toml")


def test_a_good_file():
    spec = _parse(GOOD)
    assert (spec.rounds, spec.clients_per_round, spec.replicas) == (3, 2, 3)
    assert spec.aggregation is Rule.TRIMMED_MEAN and spec.trim == 0.25
    assert spec.codec == "int4" and not spec.adaptive


def test_the_level_is_chosen_per_link_unless_the_file_fixes_it():
    spec = _parse(GOOD.replace('codec = "int4"\n', ""))
    assert spec.adaptive and (spec.time_budget_s, spec.error_budget) == (0.25, 0.25)
    spec = _parse(GOOD.replace('codec = "int4"', 'codec = "adaptive"\ntime_budget_s = 2.0\n'
                                                 'error_budget = 0.05'))
    assert spec.adaptive and (spec.time_budget_s, spec.error_budget) == (2.0, 0.05)


@pytest.mark.parametrize("change, message", [
    (("rounds = 3", "rounds = 0"), r"\[fl\] rounds must be an integer from 1"),
    (("codec = \"int4\"", "codec = \"adaptive\"\nerror_budget = 0"),
     r"\[fl\] error_budget must be a number from 0.001"),
    (("codec = \"int4\"", "codec = \"int2\""), "codec 'int2' is unknown; use adaptive or one of float32"),
    (("aggregation = \"trimmed_mean\"", "aggregation = \"avg\""), "use one of fedavg"),
    (("script = \"train.py\"", ""), r"\[fl\] script is required"),
    (("shards = [\"shards/*.npz\"]", "shards = \"x\""), "list of paths"),
    (("rounds = 3", "rounds = 3\nround = 2"), "unknown field \\[fl\\] round \\(did you mean 'rounds'"),
    (("[replication]", "[replicate]"), "unknown table \\[replicate\\]"),
    (("trim = 0.25", "trim = 0.25\nmu = 0.1"), "mu is FedProx's"),
    (("trim = 0.25", "trim = 0.25\ndp_noise = 1.0"), "dp_noise needs dp_clip"),
    (("trim = 0.25", "trim = 0.25\ndp_clip = 1.0"), "DP adds noise to the mean"),
    (("model = \"init.npz\"", "model = \"../init.npz\""), "must be a relative path inside"),
    (("script = \"train.py\"", "script = \"train.py\"\nfiles = [\"/etc/x\"]"),
     "must be a relative path inside"),
])
def test_each_mistake_is_one_line_naming_the_field(change, message):
    with pytest.raises(FLError, match=message) as err:
        _parse(GOOD.replace(*change))
    assert "\n" not in str(err.value) and str(err.value).startswith("job.toml: ")

"""An FL job file: what to train, on which shards, for how many rounds, and how.

```toml
[fl]
script = "train.py"          # defines train(params, shard, epochs, rng) and evaluate(params, path)
files = ["mlp.py"]           # extra modules the script imports
model = "init.npz"           # initial parameters: numpy arrays by name
shards = ["shards/*.npz"]    # data shards (one per client), glob patterns
test = "test.npz"            # evaluated on the submitter's machine after every round
rounds = 3
clients_per_round = 3
local_epochs = 1
aggregation = "fedavg"       # fedavg | fedprox (with mu) | median | trimmed_mean (with trim)
codec = "adaptive"           # adaptive (per client and round, from the predicted link) or a
                             # fixed level: float32 | float16 | int8 | int4
time_budget_s = 0.25         # adaptive: upload seconds a round may spend (T_budget) ...
error_budget = 0.25          # ... and relative error one update may add (QE_budget)
error_feedback = true        # carry what a lossy level dropped into the client's next update
                             # (default: on unless codec = "float32")
selection = "random"         # random | phi (similarity x predicted time before leaving)
seed = 1

[replication]
replicas = 2

[limits]
fuel = 50_000_000_000
memory_mb = 256
wall_s = 300
```

Pure: ``parse_fl_spec(doc, where)`` checks a parsed TOML document and returns ``FLSpec``
(paths still relative); every mistake is one ``FLError`` line naming the field and the fix.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from daemon.fl.aggregate import DEFAULT_TRIM, Rule
from daemon.fl.params import FLError
from protocol.tensor import Codec, CodecSpec

CODECS: dict[str, CodecSpec] = {
    "float32": CodecSpec(Codec.LOSSLESS), "float16": CodecSpec(Codec.FLOAT16),
    "int8": CodecSpec(Codec.INT8), "int4": CodecSpec(Codec.INT4),
}
ADAPTIVE = "adaptive"
"""The level chosen per client and round from the predicted link (``daemon.fl.linkplan``)."""
SELECTIONS = ("random", "phi")
MAX_ROUNDS = 10_000
MAX_SHARDS = 10_000
_KNOWN = {
    "fl": ("script", "files", "model", "shards", "test", "rounds", "clients_per_round",
           "local_epochs", "aggregation", "mu", "trim", "codec", "time_budget_s", "error_budget",
           "error_feedback", "selection", "seed", "dp_clip", "dp_noise"),
    "replication": ("replicas",),
    "limits": ("fuel", "memory_mb", "wall_s"),
}


@dataclass(frozen=True)
class FLSpec:
    script: str
    model: str
    shards: tuple[str, ...]
    test: str
    files: tuple[str, ...] = ()
    rounds: int = 10
    clients_per_round: int = 3
    local_epochs: int = 1
    aggregation: Rule = Rule.FEDAVG
    mu: float = 0.0
    trim: float = DEFAULT_TRIM
    codec: str = ADAPTIVE
    time_budget_s: float = 0.25
    error_budget: float = 0.25
    error_feedback: bool = True
    """Each client's residual kept on the volunteers that ran it (``daemon.fl.feedback``)."""
    selection: str = "random"
    """``random`` or ``phi`` (``daemon.fl.select``)."""
    seed: int = 1
    dp_clip: float = 0.0
    dp_noise: float = 0.0
    replicas: int = 2
    fuel: int = 50_000_000_000
    memory_mb: int = 256
    wall_s: int = 300

    @property
    def adaptive(self) -> bool:
        return self.codec == ADAPTIVE


def parse_fl_spec(doc: dict[str, Any], where: str) -> FLSpec:
    """Check a parsed FL job file; ``where`` (the file name) starts every error line."""
    for section, table in doc.items():
        if section not in _KNOWN:
            raise FLError(f"{where}: unknown table [{section}] (an FL job has [fl],"
                          " [replication] and [limits])")
        if not isinstance(table, dict):
            raise FLError(f"{where}: [{section}] must be a table")
        for key in table:
            if key not in _KNOWN[section]:
                near = difflib.get_close_matches(key, _KNOWN[section], n=1)
                hint = f"did you mean {near[0]!r}?" if near else "known: " + ", ".join(
                    _KNOWN[section])
                raise FLError(f"{where}: unknown field [{section}] {key} ({hint})")
    fl = doc.get("fl")
    if not isinstance(fl, dict):
        raise FLError(f"{where}: an FL job needs an [fl] table (see docs/fl.md)")
    rep, lim = doc.get("replication", {}), doc.get("limits", {})

    def text(key: str, example: str) -> str:
        v = fl.get(key)
        if not isinstance(v, str) or not v:
            raise FLError(f"{where}: [fl] {key} is required (e.g. {key} = {example!r})")
        return v

    def paths(key: str, required: bool) -> tuple[str, ...]:
        v = fl.get(key, [])
        if not isinstance(v, list) or not all(isinstance(p, str) and p for p in v) or (
                required and not v):
            raise FLError(f"{where}: [fl] {key} must be a list of paths or glob patterns"
                          f' (e.g. {key} = ["shards/*.npz"])')
        return tuple(v)

    def integer(table: dict[str, Any], section: str, key: str, default: int, lo: int,
                hi: int) -> int:
        v = table.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise FLError(f"{where}: [{section}] {key} must be an integer from {lo:,} to"
                          f" {hi:,}, got {v!r}")
        return v

    def number(key: str, default: float, lo: float, hi: float) -> float:
        v = fl.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise FLError(f"{where}: [fl] {key} must be a number from {lo} to {hi}, got {v!r}")
        return float(v)

    aggregation = fl.get("aggregation", "fedavg")
    try:
        rule = Rule.parse(aggregation if isinstance(aggregation, str) else repr(aggregation))
    except FLError as err:
        raise FLError(f"{where}: [fl] {err}") from None
    codec = fl.get("codec", ADAPTIVE)
    if codec not in CODECS and codec != ADAPTIVE:
        raise FLError(f"{where}: [fl] codec {codec!r} is unknown; use {ADAPTIVE} or one of"
                      f" {', '.join(CODECS)}")
    feedback = fl.get("error_feedback", codec != "float32")
    if not isinstance(feedback, bool):
        raise FLError(f"{where}: [fl] error_feedback must be true or false, got {feedback!r}")
    if feedback and codec == "float32":
        raise FLError(f"{where}: [fl] error_feedback with codec = \"float32\" has nothing to"
                      " carry (float32 drops nothing); drop one of them")
    selection = fl.get("selection", "random")
    if selection not in SELECTIONS:
        raise FLError(f"{where}: [fl] selection must be one of {', '.join(SELECTIONS)},"
                      f" got {selection!r}")
    spec = FLSpec(
        script=text("script", "train.py"), model=text("model", "init.npz"),
        shards=paths("shards", True), test=text("test", "test.npz"),
        files=paths("files", False),
        rounds=integer(fl, "fl", "rounds", 10, 1, MAX_ROUNDS),
        clients_per_round=integer(fl, "fl", "clients_per_round", 3, 1, MAX_SHARDS),
        local_epochs=integer(fl, "fl", "local_epochs", 1, 1, 1000),
        aggregation=rule, mu=number("mu", 0.0, 0.0, 1e6), trim=number("trim", DEFAULT_TRIM, 0.0, 0.49),
        codec=str(codec), time_budget_s=number("time_budget_s", 0.25, 0.001, 3600.0),
        error_budget=number("error_budget", 0.25, 0.001, 10.0),
        error_feedback=feedback, selection=str(selection), seed=integer(fl, "fl", "seed", 1, 0, 2**63 - 1),
        dp_clip=number("dp_clip", 0.0, 0.0, 1e9), dp_noise=number("dp_noise", 0.0, 0.0, 1e6),
        replicas=integer(rep, "replication", "replicas", 2, 1, 16),
        fuel=integer(lim, "limits", "fuel", 50_000_000_000, 1, 10**13),
        memory_mb=integer(lim, "limits", "memory_mb", 256, 1, 4096),
        wall_s=integer(lim, "limits", "wall_s", 300, 1, 24 * 3600),
    )
    if spec.mu and rule is not Rule.FEDPROX:
        raise FLError(f"{where}: [fl] mu is FedProx's; set aggregation = \"fedprox\" or drop mu")
    if spec.dp_clip and rule not in (Rule.FEDAVG, Rule.FEDPROX):
        raise FLError(f"{where}: [fl] DP adds noise to the mean of clipped updates; use"
                      f" aggregation = \"fedavg\" or \"fedprox\" with dp_clip, not {rule.value}")
    for path in (spec.script, spec.model, spec.test) + spec.files + spec.shards:
        if path.startswith("/") or ".." in path.replace("\\", "/").split("/"):
            raise FLError(f"{where}: [fl] {path!r} must be a relative path inside the job's"
                          " directory")
    if spec.dp_noise and not spec.dp_clip:
        raise FLError(f"{where}: [fl] dp_noise needs dp_clip (the norm each update is clipped to)")
    return spec

"""The node's FL runs in its SQLite database, so a restarted daemon goes on where it stopped.

A run's record (``NS_RUNS``, key: run id) holds the job file as written (parsed again at
start), the shard names, the digests of its three pinned blobs (the task files with every
shard, the test set, the current model), how many rounds are done, each client's carried
state (``daemon.fl.rounds.ClientState``), and the round in flight: its plan and, once
submitted, its job id. One history row per finished round (``NS_ROUNDS``, key: run id +
round) is written in the same transaction as the record that counts it and the model it
produced, so the record, the model and the history never disagree after a crash.

Resuming (``daemon.flrun.driver``): a run with a round in flight whose job the node still knows
takes that job's certified results; one whose job is unknown (never submitted, or the node
lost it) plans and submits that round again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import msgpack
import tomllib

from daemon.fl.rounds import ClientState, RoundPlan, RunState
from daemon.fl.spec import FLSpec, parse_fl_spec
from daemon.storage.db import Database

NS_RUNS = "fl-runs"
NS_ROUNDS = "fl-rounds"
ID = 32
PREFIX = "fl-"
"""Run ids are shown as ``fl-`` and hex digits, so every command tells them from job ids."""


@dataclass
class InFlight:
    plan: RoundPlan
    job: bytes | None = None
    """The round's job, once submitted."""
    attempt: int = 1
    """Which submission of the round this is (``driver.ROUND_ATTEMPTS``)."""
    started_ms: int = 0
    """When the round was first planned (its history row says how long it took)."""


@dataclass
class Run:
    id: bytes
    name: str
    text: str
    where: str
    source: str
    shards: tuple[str, ...]
    files: bytes
    test: bytes
    model: bytes
    submitted_ms: int
    state: RunState = RunState.RUNNING
    error: str = ""
    done: int = 0
    clients: dict[str, ClientState] = field(default_factory=dict)
    inflight: InFlight | None = None
    ended_ms: int = 0
    # not stored: what the driver is doing now (``status`` shows it)
    activity: str = field(default="", compare=False)
    progress: dict[str, int] = field(default_factory=dict, compare=False)
    _spec: FLSpec | None = field(default=None, compare=False, repr=False)

    @property
    def spec(self) -> FLSpec:
        if self._spec is None:
            self._spec = parse_fl_spec(tomllib.loads(self.text), self.where)
        return self._spec

    @property
    def label(self) -> str:
        return label(self.id)

    def to_bytes(self) -> bytes:
        inflight = None if self.inflight is None else {
            "plan": self.inflight.plan.to_wire(), "job": self.inflight.job,
            "attempt": self.inflight.attempt, "started_ms": self.inflight.started_ms}
        return bytes(msgpack.packb({
            "v": 1, "name": self.name, "text": self.text, "where": self.where,
            "source": self.source, "shards": list(self.shards), "files": self.files,
            "test": self.test, "model": self.model, "submitted_ms": self.submitted_ms,
            "state": self.state.value, "error": self.error, "done": self.done,
            "clients": {k: v.to_wire() for k, v in sorted(self.clients.items())},
            "inflight": inflight, "ended_ms": self.ended_ms}, use_bin_type=True))

    @classmethod
    def from_bytes(cls, run_id: bytes, data: bytes) -> Run:
        d = msgpack.unpackb(data, raw=False)
        inflight = d.get("inflight")
        return cls(run_id, d["name"], d["text"], d["where"], d["source"], tuple(d["shards"]),
                   d["files"], d["test"], d["model"], d["submitted_ms"], RunState(d["state"]),
                   d["error"], d["done"],
                   {k: ClientState.from_wire(v) for k, v in d["clients"].items()},
                   None if inflight is None else InFlight(RoundPlan.from_wire(inflight["plan"]),
                                                          inflight["job"],
                                                          inflight.get("attempt", 1),
                                                          inflight.get("started_ms", 0)),
                   d.get("ended_ms", 0))


def label(run_id: bytes) -> str:
    return PREFIX + run_id.hex()


class RunStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load(self) -> list[Run]:
        return [Run.from_bytes(key, raw) for key, raw in self.db.scan(NS_RUNS)]

    def save(self, run: Run, row: dict[str, Any] | None = None) -> None:
        """The run's record, and (when a round finished) its history row, at once."""
        with self.db.transaction():
            self.db.put(NS_RUNS, run.id, run.to_bytes())
            if row is not None:
                self.db.put(NS_ROUNDS, run.id + int(row["round"]).to_bytes(4, "big"),
                            json.dumps(row).encode())

    def delete(self, run_id: bytes) -> None:
        with self.db.transaction():
            self.db.delete(NS_RUNS, run_id)
            for key, _ in self.db.scan(NS_ROUNDS, run_id):
                self.db.delete(NS_ROUNDS, key)

    def history(self, run_id: bytes) -> list[dict[str, Any]]:
        return [json.loads(raw) for _, raw in self.db.scan(NS_ROUNDS, run_id)]

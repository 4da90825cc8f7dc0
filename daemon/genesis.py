"""The genesis of a network: its name, its parameters and its founding members.

Every node of a network loads the same genesis file. Its digest (over canonical bytes) is the
first epoch's randomness, so every honest node derives the same first committees
(``consensus.directory``). Each founding member carries its proof of work, like any later
joiner, so identities are never free. ``novacron testnet up`` writes one for a local testnet
(low difficulty); a public network publishes its own with the software.

File format (TOML)::

    network = "novacron-testnet-1a2b3c4d"

    [params]
    shards = 1                  # shard committees ordering job ledgers
    difficulty = 8              # proof-of-work bits per identity
    byzantine_percent = 20      # assumed share of Byzantine nodes, for committee sizing
    target_failure_exp = 6      # a committee may fail with probability at most 10^-6
    min_committee = 4
    checkpoint_interval = 16
    evict_after_s = 86400       # a member silent this long is evicted (0: never)

    [[members]]
    node_id = "12D3KooW..."
    pow = 1234
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from consensus.directory import DirectoryMachine, DirectoryParams, EpochConfig
from consensus.pow import check_pow, solve_pow
from daemon.storage.userfile import UserFileError, read_capped_text
from daemon.errors import DaemonError
from protocol.canonical import packb
from protocol.errors import RemoteProtocolError
from protocol.identity import NodeIdentity, public_key_from_node_id, short_node_id

DEFAULT_PARAMS: dict[str, int] = {
    "shards": 1,
    "difficulty": 8,
    "byzantine_percent": 20,
    "target_failure_exp": 6,
    "min_committee": 4,
    "checkpoint_interval": 16,
    "evict_after_s": 86400,
}
MAX_GENESIS_BYTES = 16 << 20
_LIMITS = {
    "shards": (1, 1024), "difficulty": (0, 40), "byzantine_percent": (0, 33),
    "target_failure_exp": (1, 18), "min_committee": (1, 1000), "checkpoint_interval": (2, 4096),
    "evict_after_s": (0, 365 * 86400),
}


class GenesisError(DaemonError):
    """The genesis file is missing or wrong; one line saying what and where."""


@dataclass(frozen=True)
class Genesis:
    network: str
    members: tuple[tuple[str, int], ...]
    """(node id, proof-of-work nonce) of each founding member."""
    params: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PARAMS))

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(packb([self.network, [list(m) for m in self.members],
                                     sorted(self.params.items())])).digest()

    @property
    def member_keys(self) -> tuple[bytes, ...]:
        return tuple(public_key_from_node_id(m) for m, _ in self.members)

    def directory_params(self) -> DirectoryParams:
        p = self.params
        return DirectoryParams(
            network=self.network, difficulty=p["difficulty"], shards=p["shards"],
            byzantine_fraction=p["byzantine_percent"] / 100,
            target_failure=10.0 ** -p["target_failure_exp"], min_committee=p["min_committee"])

    def directory(self) -> DirectoryMachine:
        """The directory state machine at epoch 0."""
        return DirectoryMachine(self.directory_params(), self.member_keys, self.digest)

    def epoch0(self) -> EpochConfig:
        return self.directory().config()


def make_genesis(network: str, identities: list[NodeIdentity],
                 params: dict[str, int] | None = None) -> Genesis:
    merged = dict(DEFAULT_PARAMS, **(params or {}))
    members = tuple((i.node_id, solve_pow(network, i.public_key, merged["difficulty"]))
                    for i in identities)
    return Genesis(network, members, merged)


def genesis_toml(g: Genesis) -> str:
    lines = [f'network = "{g.network}"', "", "[params]"]
    lines += [f"{k} = {v}" for k, v in sorted(g.params.items())]
    for node_id, nonce in g.members:
        lines += ["", "[[members]]", f'node_id = "{node_id}"', f"pow = {nonce}"]
    return "\n".join(lines) + "\n"


def write_testnet_genesis(network: str, identities: list[NodeIdentity], path: Path,
                          params: dict[str, int] | None = None) -> Genesis:
    genesis = make_genesis(network, identities, params)
    path.write_text(genesis_toml(genesis))
    return genesis


def load_genesis(path: Path, network: str) -> Genesis:
    where = str(path)
    try:
        doc = tomllib.loads(read_capped_text(path, MAX_GENESIS_BYTES))
    except UserFileError as err:
        if err.missing:
            raise GenesisError(f"no genesis file at {path}; pass --genesis FILE (a testnet writes "
                               "one with `novacron testnet up`)") from None
        raise GenesisError(f"genesis file {path} {err}") from None
    except tomllib.TOMLDecodeError as err:
        raise GenesisError(f"{where} is not valid TOML: {err}") from None
    if doc.get("network") != network:
        raise GenesisError(f"{where} is the genesis of network {doc.get('network')!r}, but this "
                           f"node is configured for {network!r}")
    params = dict(DEFAULT_PARAMS)
    given = doc.get("params", {})
    if not isinstance(given, dict):
        raise GenesisError(f"{where}: [params] must be a table")
    for key, value in given.items():
        if key not in _LIMITS:
            raise GenesisError(f"{where}: unknown parameter {key!r} (known: {', '.join(_LIMITS)})")
        lo, hi = _LIMITS[key]
        if type(value) is not int or not lo <= value <= hi:
            raise GenesisError(f"{where}: {key} must be an integer in [{lo}, {hi}], got {value!r}")
        params[key] = value
    members = doc.get("members")
    if not isinstance(members, list) or not members:
        raise GenesisError(f"{where}: needs at least one [[members]] entry")
    out: list[tuple[str, int]] = []
    for i, m in enumerate(members):
        if not isinstance(m, dict) or set(m) != {"node_id", "pow"}:
            raise GenesisError(f"{where}: member {i} needs exactly node_id and pow")
        try:
            pk = public_key_from_node_id(m["node_id"])
        except (RemoteProtocolError, TypeError):
            raise GenesisError(f"{where}: member {i}: {m['node_id']!r} is not a node id") from None
        if type(m["pow"]) is not int or not check_pow(network, pk, m["pow"], params["difficulty"]):
            raise GenesisError(f"{where}: member {i} ({short_node_id(m['node_id'])}) has no valid proof of "
                               f"work at difficulty {params['difficulty']}")
        out.append((m["node_id"], m["pow"]))
    if len({m for m, _ in out}) != len(out):
        raise GenesisError(f"{where}: a member is listed twice")
    return Genesis(network, tuple(out), params)

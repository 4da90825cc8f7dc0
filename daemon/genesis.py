"""The genesis of a network: its name, its parameters and its initial members.

Every node of a network loads the same genesis file; its SHA-256 (over canonical bytes) is the
network's first epoch randomness, so every honest node derives the same first committees.
Written by ``novacron testnet up`` for a local testnet; for a public network it is published
with the software.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from protocol.canonical import packb
from protocol.identity import NodeIdentity, public_key_from_node_id
from protocol.errors import RemoteProtocolError


class GenesisError(Exception):
    """The genesis file is missing or wrong; one line saying what and where."""


@dataclass(frozen=True)
class Genesis:
    network: str
    members: tuple[str, ...]
    params: dict[str, int] = field(default_factory=dict)

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(packb([self.network, list(self.members),
                                     sorted(self.params.items())])).digest()


def write_testnet_genesis(network: str, identities: list[NodeIdentity], path: Path) -> Genesis:
    genesis = Genesis(network, tuple(i.node_id for i in identities))
    lines = [f'network = "{network}"', "members = ["]
    lines += [f'  "{m}",' for m in genesis.members]
    lines += ["]", "", "[params]"]
    lines += [f"{k} = {v}" for k, v in sorted(genesis.params.items())]
    path.write_text("\n".join(lines) + "\n")
    return genesis


def load_genesis(path: Path, network: str) -> Genesis:
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise GenesisError(f"no genesis file at {path}; pass --genesis FILE (a testnet writes "
                           "one with `novacron testnet up`)") from None
    except tomllib.TOMLDecodeError as err:
        raise GenesisError(f"{path} is not valid TOML: {err}") from None
    if doc.get("network") != network:
        raise GenesisError(f"{path} is the genesis of network {doc.get('network')!r}, but this "
                           f"node is configured for {network!r}")
    members = doc.get("members")
    if not isinstance(members, list) or not members:
        raise GenesisError(f"{path}: members must be a non-empty list of node ids")
    for m in members:
        try:
            public_key_from_node_id(m)
        except (RemoteProtocolError, TypeError):
            raise GenesisError(f"{path}: {m!r} is not a node id") from None
    params = doc.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, int) for v in params.values()):
        raise GenesisError(f"{path}: [params] must hold integers")
    return Genesis(network, tuple(members), params)

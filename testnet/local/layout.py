"""Where a local testnet keeps its files, and the record of its processes (``testnet.json``).

    <dir>/testnet.json        network name, and per node: name, node id, port, pid, data dir
    <dir>/genesis.toml        the network's genesis (shared by every node)
    <dir>/<node>/node.toml    the node's config (127.0.0.1 only)
    <dir>/<node>/node.key     its key;  node.db, node.log, control.sock: the daemon's own files
    <dir>/<node>/stdout.log   what the process printed
    <dir>/wan.json            (``--wan`` only) namespaces, addresses, delays, the relay's pid
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_DIR = Path(".novacron") / "testnet"
STATE_FILE = "testnet.json"


@dataclass
class NodeRecord:
    name: str
    node_id: str
    port: int
    data_dir: str
    pid: int | None = None
    role: str = "honest"
    """"cheater": runs ``testnet.local.cheater`` (forges task outputs) instead of the daemon."""
    host: str = "127.0.0.1"
    """The address it listens on (its namespace's own in a ``--wan`` testnet)."""
    netns: str | None = None
    """The network namespace it runs in (``--wan`` testnets), or None for the machine's."""

    @property
    def multiaddr(self) -> str:
        return f"/ip4/{self.host}/tcp/{self.port}/p2p/{self.node_id}"

    @property
    def socket(self) -> Path:
        return Path(self.data_dir) / "control.sock"


@dataclass
class TestnetState:
    network: str
    dir: str
    nodes: list[NodeRecord] = field(default_factory=list)
    wan: str | None = None
    """The ``--wan`` profile (the network is described in ``wan.json``), or None: loopback."""

    def node(self, ref: str) -> NodeRecord:
        """A node by name (``node2``) or index (``2``)."""
        for n in self.nodes:
            if ref == n.name or ref == n.name.removeprefix("node") or ref == n.node_id:
                return n
        names = ", ".join(n.name for n in self.nodes)
        raise KeyError(f"no node {ref!r} in this testnet (nodes: {names})")

    def save(self) -> None:
        path = Path(self.dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> "TestnetState | None":
        path = directory / STATE_FILE
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        return cls(doc["network"], doc["dir"], [NodeRecord(**n) for n in doc["nodes"]],
                   doc.get("wan"))

"""The docs stay true: every control method is documented, every documented one exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def documented_methods() -> set[str]:
    text = (ROOT / "docs" / "control-socket.md").read_text()
    return set(re.findall(r"^### `([a-z0-9_.]+)`", text, flags=re.M))


def registered_methods(tmp_path) -> set[str]:
    from daemon.config import NodeConfig
    from daemon.runner import build_node

    node = build_node(NodeConfig(data_dir=tmp_path / "n", listen=("/ip4/127.0.0.1/tcp/0",)))
    try:
        return set(node.control.methods)
    finally:
        node.control._sock.close()
        node.db.close()


def test_every_control_method_is_documented(tmp_path):
    registered = registered_methods(tmp_path)
    documented = documented_methods()
    assert registered - documented == set(), "undocumented methods"
    assert documented - registered == set(), "documented methods that do not exist"

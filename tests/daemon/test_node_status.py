"""``status`` while the node is still starting: it must name the services not up yet."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from daemon.config import load_config
from daemon.control.server import ControlServer
from daemon.node import Node
from daemon.storage.datadir import ensure_data_dir
from daemon.storage.db import Database
from daemon.storage.keyfile import load_or_create_identity


class GatedService:
    """A service that reports started only when the test opens its gate."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.gate = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.gate.wait()
        task_status.started()
        await trio.sleep_forever()

    def status(self) -> dict[str, Any]:
        return {"health": "ok", "summary": ""}

    def register_rpc(self, server: ControlServer) -> None:
        pass


async def test_status_names_services_still_starting(tmp_path):
    data = ensure_data_dir(tmp_path / "node")
    config = load_config(None, {"data_dir": str(data)})
    identity, _ = load_or_create_identity(data)
    node = Node(config, identity, Database(config.db_path))
    first, second = GatedService("first"), GatedService("second")
    node.add(first)
    node.add(second)
    node.control.bind()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.run)
        await trio.testing.wait_all_tasks_blocked()
        st = await node.rpc_status({})
        assert st["health"] == "starting (first, second not up yet)" and not st["ready"]
        first.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert (await node.rpc_status({}))["health"] == "starting (second not up yet)"
        second.gate.set()
        await node.started.wait()
        st = await node.rpc_status({})
        assert st["health"] == "ok" and st["ready"]
        nursery.cancel_scope.cancel()

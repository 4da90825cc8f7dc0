"""What the node's services have in common.

A service is a long-lived trio task (``run(task_status=...)``, started in the node's nursery,
``task_status.started()`` once it is ready) that can describe itself for ``novacron status``
and may add methods to the control socket.
"""

from __future__ import annotations

from typing import Any, Protocol

import trio

from daemon.control.server import ControlServer


class Service(Protocol):
    name: str

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None: ...

    def status(self) -> dict[str, Any]:
        """A JSON-able summary for ``novacron status``; include ``"health": "ok" | reason``."""
        ...

    def register_rpc(self, server: ControlServer) -> None: ...

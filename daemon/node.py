"""The node: its services in one nursery, started in dependency order, stopped together.

Start order: storage is opened before anything runs (``Node.open``); then the control socket
(so ``novacron status`` answers while the rest starts), then every other service in the order
given. Each ``run`` calls ``task_status.started()`` when ready, so a service can rely on those
before it. Cancelling ``Node.run`` (SIGINT/SIGTERM in ``daemon.runner``) stops every service;
each closes its own sockets in ``finally`` blocks.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import trio

from daemon import __version__
from daemon.config import NodeConfig
from daemon.control.params import only
from daemon.control.server import ControlServer
from daemon.service import Service
from daemon.storage.db import Database
from protocol.identity import NodeIdentity

log = logging.getLogger("novacron.node")


class Node:
    def __init__(self, config: NodeConfig, identity: NodeIdentity, db: Database) -> None:
        self.config = config
        self.identity = identity
        self.db = db
        self.control = ControlServer(config.socket_path)
        self.services: list[Service] = []
        self.started_wall = time.time()
        self.started = trio.Event()
        self.stop_requested = trio.Event()  # ``novacron stop``; ``runner.serve`` acts on it
        # Services whose ``run`` has reported started: the control socket answers before the
        # rest are up, and ``status`` must say which ones a caller is still waiting for.
        self.running: set[str] = set()
        self.control.register("status", self.rpc_status)
        self.control.register("ping", self.rpc_ping)
        self.control.register("stop", self.rpc_stop)

    def add(self, service: Service) -> None:
        self.services.append(service)
        service.register_rpc(self.control)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.control.run)
            for service in self.services:
                log.info("starting %s", service.name)
                await nursery.start(service.run)
                self.running.add(service.name)
            self.started.set()
            log.info("node %s is up on network %s", self.identity.node_id, self.config.network)
            task_status.started()

    # -- control methods ------------------------------------------------------------------------

    async def rpc_ping(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        return {"node_id": self.identity.node_id, "pid": os.getpid()}

    async def rpc_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        """Shut the daemon down cleanly (as SIGTERM does); the answer comes first."""
        only(params)
        self.stop_requested.set()
        return {"node_id": self.identity.node_id, "pid": os.getpid(), "state": "stopping"}

    async def rpc_status(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        return self.status()

    def status(self) -> dict[str, Any]:
        """What ``novacron status`` shows (also read by the metrics and the web page)."""
        services = {s.name: s.status() for s in self.services}
        waiting = [s.name for s in self.services if s.name not in self.running]
        problems = [f"starting ({', '.join(waiting)} not up yet)"] if waiting else []
        problems += [f"{name}: {st['health']}" for name, st in services.items()
                     if st.get("health", "ok") != "ok" and name not in waiting]
        return {
            "node_id": self.identity.node_id,
            "network": self.config.network,
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_wall, 1),
            "data_dir": str(self.config.data_dir),
            "ready": self.started.is_set(),
            "health": "ok" if not problems else "; ".join(problems),
            "services": services,
        }

"""The p2p host as a node service: its part of ``novacron status`` and the ``peers`` method."""

from __future__ import annotations

import random
from typing import Any

import trio

from daemon.control.params import only
from daemon.control.server import ControlServer
from daemon.p2p.compat import health_line
from daemon.p2p.config import P2PConfig
from daemon.p2p.host import P2PHost
from protocol.identity import NodeIdentity


class P2PService:
    name = "p2p"

    def __init__(self, identity: NodeIdentity, config: P2PConfig, rng: random.Random) -> None:
        self.host = P2PHost(identity, config, rng)
        self.bootstrap = len(config.bootstrap)
        # Other services add to what ``peers`` shows per peer (e.g. its capability record).
        self.peer_info: list[Any] = []

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self.host.run(task_status=task_status)

    def status(self) -> dict[str, Any]:
        m = self.host.metrics()
        connected = len(self.host.connected_peers())
        drops = sum(m.get("drops", {}).values())
        faults = sum(sum(r.values()) for r in m.get("faults", {}).values())
        view = self.host.overlay_summary()
        incompatible = self.host.incompatible_peers()
        health = "ok"
        if incompatible:
            health = health_line(incompatible, connected) or health
        elif self.bootstrap and connected == 0:
            health = "no peers connected (check the bootstrap addresses and the network)"
        elif view["view_connected"] < min(view["known"], (view["degree"] + 1) // 2):
            # Fewer than half the view's peers up while more are known: the node hangs on by a
            # thread (one seed), which is not the healthy state it would otherwise report.
            health = (f"only {view['view_connected']} of {min(view['known'], view['degree'])} "
                      f"view peers connected ({view['known']} known); dialling others")
        return {
            "health": health,
            "summary": (f"{connected} peers ({view['view_connected']}/{view['degree']} view), "
                        f"{view['known']} known, {drops} drops, {faults} peer faults"),
            "connected": connected,
            "reached": view["known"],
            "view": view,
            "rtt": self.host.rtts.summary(),
            # public / behind NAT through relay X / direct after hole punching, and what it
            # last tried (``daemon.p2p.reachability``); ``line`` is what the CLI prints.
            "reachability": self.host.traversal.summary(),
            "known": m.get("known_peers", 0),
            "listen": self.host.listen_addrs(),
            "drops": m.get("drops", {}),
            "faults": m.get("faults", {}),
            "banned": m.get("banned_peers", 0),
            "incompatible": {peer: m.describe() for peer, m in incompatible.items()},
        }

    def register_rpc(self, server: ControlServer) -> None:
        server.register("peers", self.rpc_peers)
        server.register("p2p.metrics", self.rpc_metrics)

    async def rpc_peers(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        peers = []
        view, kept = self.host.overlay_view(), self.host.overlay_kept()
        for p in sorted(self.host.known_peers(), key=lambda p: p.node_id):
            role = "view" if p.node_id in view else "committee" if p.node_id in kept else "work"
            entry: dict[str, Any] = {
                "node_id": p.node_id, "addrs": list(p.addrs), "connected": p.connected,
                "role": role if p.connected or p.node_id in view else "known",
                "bootstrap": p.bootstrap, "banned": p.banned, "fault_score": round(p.fault_score, 2),
            }
            for extra in self.peer_info:
                entry.update(extra(p.node_id))
            peers.append(entry)
        return {"peers": peers, "self": self.host.node_id, "listen": self.host.listen_addrs()}

    async def rpc_metrics(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        return self.host.metrics()

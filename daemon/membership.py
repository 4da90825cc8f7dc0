"""Leaving the network on purpose (``novacron leave``), and coming back (``novacron join``).

A volunteer who stops for good should not leave work stranded or a committee seat empty until
eviction notices the silence (``consensus.directory``, a day by default). Leaving:

- stops taking work: the capability record offers 0 slots, so no placement picks this node,
  and offers that still arrive are declined (a node fault: they are placed elsewhere);
- releases the replicas the node holds (``Leave`` to each ledger), so they run elsewhere now;
- asks the directory to drop the node at the next epoch (``["leave"]``).

The choice is kept in the node's database: a restarted daemon stays out (it does not join
again by itself, as an evicted one does) until ``novacron join`` undoes all three.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from consensus.committee import DIRECTORY_SHARD
from daemon.control.params import only
from daemon.control.server import ControlServer
from daemon.storage.db import Database
from protocol.canonical import packb

if TYPE_CHECKING:
    from daemon.committees import CommitteeService
    from daemon.jobs.worker import WorkerDuties
    from daemon.softstate.service import SoftStateService

log = logging.getLogger("novacron.membership")

_NS = "membership"
LEFT_REASON = "this volunteer has left the network (`novacron join` to come back)"


class Membership:
    def __init__(self, db: Database, committees: "CommitteeService", soft: "SoftStateService",
                 worker: "WorkerDuties") -> None:
        self.db = db
        self.committees = committees
        self.soft = soft
        self.worker = worker
        self.slots = soft.slots
        if self.left:
            self._stay_out(True)

    @property
    def left(self) -> bool:
        return self.db.get(_NS, "left") is not None

    def _stay_out(self, out: bool) -> None:
        self.committees.epochs.stay_out = out
        self.worker.declining = LEFT_REASON if out else None
        self.soft.slots = 0 if out else self.slots

    def register_rpc(self, server: ControlServer) -> None:
        server.register("leave", self.rpc_leave)
        server.register("join", self.rpc_join)

    async def rpc_leave(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        if self.left:
            return {"state": "already left"}
        self.db.put(_NS, "left", b"1")
        self._stay_out(True)
        self.soft.publish("leave")
        shards = await self.worker.leave("the volunteer left the network")
        try:
            reply = await self.committees.submit(DIRECTORY_SHARD, packb(["leave"]), timeout=20.0)
            directory = reply.decode(errors="replace")
        except Exception as err:  # noqa: BLE001 - eviction will finish the job: say so
            directory = f"not reached ({err}); silence will evict this node"
        log.info("left the network: directory %s, released replicas on %d shard(s)",
                 directory, shards)
        return {"state": "left", "directory": directory, "released_on_shards": shards}

    async def rpc_join(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        if not self.left:
            return {"state": "already in"}
        self.db.delete(_NS, "left")
        self._stay_out(False)
        self.soft.publish("join")
        log.info("joining the network again")
        return {"state": "joining"}

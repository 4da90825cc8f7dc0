"""The jobs service: this node as submitter, committee member and worker, and its control methods.

Protocol ``/novacron/jobs/1`` carries ``TaskOffers`` (committee member -> worker) and
``ResultVotes`` (committee member -> submitter) envelopes, one per committed batch and peer. See ``submitter``, ``member`` and
``worker`` for each role; this module wires them to the committees, the blob store, the
sandbox pool, the soft state (placement candidates) and the control socket.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import trio

from consensus.committee import DIRECTORY_SHARD
from daemon.blobs import BlobService
from daemon.committees.service import CommitteeService
from daemon.control.jsonrpc import NOT_FOUND, REJECTED, UNAVAILABLE, RpcError
from daemon.control.params import get, only
from daemon.control.server import ControlServer
from daemon.jobs.member import MemberDuties
from daemon.jobs.ports import CandidateSource, CommitteeLedger
from daemon.jobs.results import Gathered, failure_row, write_results
from daemon.jobs.spec import SpecError, load_spec
from daemon.jobs.split import (ENDED, Part, SplitError, Unanswered, combine, combine_state,
                               locate, part_count)
from daemon.jobs.submitter import SubmitterDuties, Unplaceable
from daemon.jobs.wholes import WholeJob, WholeJobs
from daemon.jobs.held import HeldOffers
from daemon.jobs.worker import WorkerDuties
from daemon.p2p.errors import P2PError
from daemon.p2p.host import P2PHost
from daemon.runtime import WorkerPool
from protocol.canonical import packb, unpackb
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.identity import NodeIdentity
from protocol.messages import ledger as ops
from protocol.messages.tasks import (CheckpointReady, OutputReady, ResultVotes, TaskOffers,
                                     TaskStatus)

log = logging.getLogger("novacron.jobs")

PROTOCOL = "/novacron/jobs/1"
HAND_OVER = "/novacron/jobs/output/1"
"""Request/response: a worker's ``OutputReady`` to the submitter, answered once it has the output."""
HAND_OVER_TIMEOUT_S = 20.0
"""A submitter that cannot take the output in this long fetches it later, after the vote."""


class JobsService:
    name = "jobs"

    def __init__(self, identity: NodeIdentity, committees: CommitteeService, host: P2PHost,
                 blobs: BlobService, pool: WorkerPool, soft: CandidateSource) -> None:
        self.identity = identity
        self.committees = committees
        self.ledger = CommitteeLedger(committees)
        self.host = host
        self.blobs = blobs
        self.pool = pool
        self.clock = committees.clock
        self.submitter = SubmitterDuties(identity, self.ledger, committees.db, blobs, soft,
                                         self.clock)
        self.wholes = WholeJobs(self.submitter)
        self.member = MemberDuties(identity, self.ledger, self, soft, self.clock)
        self.worker = WorkerDuties(pool, blobs, self.ledger, self, HeldOffers(committees.db),
                                   lambda: int(self.clock.wall() * 1000))
        committees.listeners.append(self.member.on_committed)
        host.handle(PROTOCOL, self._on_frame)
        host.handle_request(HAND_OVER, self._on_hand_over)

    # -- the jobs protocol (``ports.Peers``) -----------------------------------------------------

    def seal(self, msg: Any) -> bytes:
        return self.committees.signer.seal(msg, self.clock.now())

    def send(self, node_id: str, msg: Any) -> None:
        data = self.seal(msg)
        if node_id == self.identity.node_id:
            self._handle(self.committees.verifier.open(data))
        else:
            self.host.send(node_id, PROTOCOL, data)

    def connected(self) -> list[str]:
        return self.host.connected_peers()

    async def hand_over(self, submitter: str, ready: OutputReady | CheckpointReady) -> bool:
        """Tell the submitter our output is ready; True once it has it."""
        try:
            reply = await self.host.request(submitter, HAND_OVER, self.seal(ready),
                                            timeout=HAND_OVER_TIMEOUT_S)
            return unpackb(reply, max_size=64) is True
        except (P2PError, RemoteProtocolError) as err:
            log.info("submitter %s did not take task %d's output now (%s); it fetches it later",
                     submitter[-8:], ready.task, err)
            return False

    async def _on_hand_over(self, peer: str, frame: bytes) -> bytes:
        env = self.committees.verifier.open(frame)  # garbage counts against the peer
        if not isinstance(env.body, (OutputReady, CheckpointReady)) or env.sender_id != peer:
            raise MalformedMessage(f"{env.type} from {peer[-8:]} is not its own output hand-over")
        if isinstance(env.body, CheckpointReady):
            return packb(await self.submitter.take_checkpoint(peer, env.body))
        return packb(await self.submitter.take_output(peer, env.body))

    async def _on_frame(self, peer: str, frame: bytes) -> None:
        self._handle(self.committees.verifier.open(frame))  # garbage counts against the peer

    def _handle(self, env: Any) -> None:
        m = env.body
        if isinstance(m, TaskOffers):
            for offer in m.offers:
                self.worker.on_offer(env.sender, offer)
        elif isinstance(m, ResultVotes):
            for vote in m.votes:
                self.submitter.on_vote(env.sender, vote)
        else:
            raise MalformedMessage(f"{env.type} does not belong on {PROTOCOL}")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.worker.run)
            await nursery.start(self.submitter.run)
            task_status.started()
            try:
                while True:
                    runners = [r for (s, e), r in self.committees.replicas.items()
                               if s != DIRECTORY_SHARD and e == self.committees.epoch.epoch]
                    self.member.tick(nursery, runners, self.clock.now())
                    self.member.pace.settle(self.member.resting(runners))
                    await self.member.pace.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await self.worker.leave("the node is shutting down")

    def status(self) -> dict[str, Any]:
        sub, mem, wrk = self.submitter.status(), self.member.status(), self.worker.status()
        sub["jobs"] = len(self.wholes.jobs) + sum(  # a split job counts once, not per part
            1 for j in self.submitter.jobs.values() if j.whole not in self.wholes.jobs)
        return {
            "health": "ok",
            "summary": f"{wrk['tasks_run']} tasks run, {sub['jobs']} jobs submitted, "
                       f"{sub['tasks_certified']} results certified",
            "submitter": sub, "member": mem, "worker": wrk, "blobs": self.blobs.status(),
        }

    # -- control methods ------------------------------------------------------------------------

    def register_rpc(self, server: ControlServer) -> None:
        for name in ("submit", "list", "status", "result", "cancel", "explain", "logs"):
            server.register(f"jobs.{name}", getattr(self, f"rpc_{name}"))

    def _find(self, params: dict[str, Any]) -> bytes:
        text = get(params, "job", str).lower()
        if len(text) < 6 or any(c not in "0123456789abcdef" for c in text):
            raise RpcError(NOT_FOUND, f"{text!r} is not a job id (give at least 6 hex digits; "
                                      "see `novacron jobs`)")
        matches = [j for j in (*self.wholes.jobs, *self.submitter.jobs) if j.hex().startswith(text)]
        if len(matches) == 1:
            return matches[0]
        if len(text) == 64:
            return bytes.fromhex(text)
        if not matches:
            raise RpcError(NOT_FOUND, f"no job {text} submitted from this node; see `novacron jobs`")
        raise RpcError(NOT_FOUND, f"{text} matches {len(matches)} jobs; give more digits")

    def _shard(self, jid: bytes) -> int:
        local = self.submitter.jobs.get(jid)
        return local.shard if local else self.committees.shard_of(jid)

    async def _ledger(self, shard: int, op: Any) -> dict[str, Any]:
        try:
            reply = await self.ledger.order(shard, op)
        except Exception as err:  # noqa: BLE001 - CommitteeUnavailable, QueueFull
            raise RpcError(UNAVAILABLE, str(err)) from None
        if "error" in reply:
            raise RpcError(NOT_FOUND if "no job" in reply["error"] else REJECTED, reply["error"])
        return reply

    async def rpc_submit(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "spec")
        path = Path(get(params, "spec", str))
        if not path.is_absolute():
            raise RpcError(REJECTED, "give the spec as an absolute path (the CLI does this)")
        try:
            spec = await trio.to_thread.run_sync(load_spec, path)
        except SpecError as err:
            raise RpcError(REJECTED, str(err)) from None
        shards = len(self.committees.shards)
        try:
            count = part_count(len(spec.inputs), shards, spec.shards)
        except SplitError as err:
            raise RpcError(REJECTED, f"{spec.source}: {err}") from None
        try:
            if count > 1:
                return await self._submit_whole(spec, count, shards)
            job, reply = await self.submitter.submit_job(spec)
        except Unplaceable as err:
            raise RpcError(REJECTED, f"{spec.source}: no current network can place this job: "
                                     f"{err}") from None
        except RpcError:
            raise
        except Exception as err:  # noqa: BLE001
            raise RpcError(UNAVAILABLE, f"could not submit: {err}") from None
        if "error" in reply:
            raise RpcError(REJECTED, f"the committee refused the job: {reply['error']}")
        out = {"job": job.id.hex(), "tasks": job.tasks, "shard": job.shard, "name": job.name,
               "parts": None}
        committee = self.committees.epoch.committees.get(job.shard, ())
        if len(committee) == 1:  # a one-node network is valid, but nobody else checks it
            out["notice"] = ("this network's committee has one member: results are checked "
                             "by nobody else")
        return out

    async def _submit_whole(self, spec: Any, count: int, shards: int) -> dict[str, Any]:
        whole = await self.wholes.submit(spec, count, shards)
        if whole.refused:
            raise RpcError(REJECTED, f"{spec.source}: the job was split in {count} parts and "
                                     f"{whole.refused}; the other parts were cancelled")
        return {"job": whole.id.hex(), "tasks": whole.tasks, "shard": None, "name": whole.name,
                "parts": whole.to_json(),
                "notice": f"split in {count} parts: " + ", ".join(p.words() for p in whole.parts)
                          + "; each is a job of its own on its shard's committee, with every "
                            "setting as asked; status, result and cancel take this id for all"}

    async def rpc_list(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        rows = [{"job": j.id.hex(), "name": j.name, "tasks": j.tasks,
                 "certified": len(j.certified), "submitted_ms": j.submitted_ms,
                 "shard": j.shard} for j in self.submitter.jobs.values()
                if j.whole not in self.wholes.jobs]  # a part is listed under its whole
        rows += [{"job": w.id.hex(), "name": w.name, "tasks": w.tasks,
                  "certified": self.wholes.certified(w), "submitted_ms": w.submitted_ms,
                  "shard": None, "parts": w.to_json(), "refused": w.refused or None}
                 for w in self.wholes.jobs.values()]
        return {"jobs": sorted(rows, key=lambda r: r["submitted_ms"], reverse=True)}

    async def rpc_status(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "job", "tasks")
        jid = self._find(params)
        want_tasks = get(params, "tasks", bool, False)
        whole = self.wholes.jobs.get(jid)
        if whole is None:
            return await self._job_status(jid, want_tasks)
        replies: list[dict[str, Any] | Unanswered] = [Unanswered("unreachable", "not asked")] \
            * len(whole.parts)

        async def ask(k: int, part_job: bytes) -> None:  # a part's trouble shows in its row
            try:
                replies[k] = await self._job_status(part_job, want_tasks)
            except RpcError as err:
                replies[k] = Unanswered("gone" if err.code == NOT_FOUND else "unreachable",
                                        err.message)

        async with trio.open_nursery() as nursery:  # each part's committee at once
            for k, p in enumerate(whole.parts):
                nursery.start_soon(ask, k, p.job)
        out = combine(whole.id, whole.name, whole.parts, replies)
        out["certified"] = self.wholes.certified(whole)
        out["waiting"] = next((r["waiting"] for r in replies
                               if not isinstance(r, Unanswered) and r.get("waiting")), None)
        if whole.refused:
            out.update(state="refused", refused=whole.refused)
        return out

    async def _job_status(self, jid: bytes, want_tasks: bool) -> dict[str, Any]:
        reply = await self._ledger(self._shard(jid), ops.Query(jid, 0, 0, False))
        local = self.submitter.jobs.get(jid)
        out = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in reply.items() if k != "tasks"}
        out["certified"] = len(local.certified) if local else None
        needs = local.feasibility_needs() if local else None
        out["waiting"] = None
        if needs is not None and reply["state"] in ("open", "loading") and reply["counts"]["open"]:
            verdict = self.submitter.assess(needs)
            out["waiting"] = verdict.waiting or verdict.refuse
        if want_tasks:
            rows: list[Any] = []
            while len(rows) < reply["counts"]["tasks"]:
                page = await self._ledger(self._shard(jid), ops.Query(jid, len(rows), ops.MAX_QUERY_TASKS, False))
                if not page["tasks"]:
                    break
                rows += page["tasks"]
            out["tasks"] = [_task_row(r) for r in rows]
        return out

    async def rpc_cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "job")
        jid = self._find(params)
        whole = self.wholes.jobs.get(jid)
        if whole is not None:
            states = await self.wholes.cancel_parts(whole)
            ended = [v for v in states.values() if v != "never accepted"]
            return {"job": jid.hex(),
                    "state": "partly cancelled" if any(v not in ENDED for v in ended)
                    else combine_state(ended) if ended else "refused",
                    "parts": [{**p, "state": states[p["part"]]} for p in whole.to_json()]}
        reply = await self._ledger(self._shard(jid), ops.Cancel(jid))
        return {"job": jid.hex(), "state": reply["state"]}

    async def rpc_explain(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "job", "task")
        jid = self._find(params)
        task = get(params, "task", int)
        whole = self.wholes.jobs.get(jid)
        if whole is None:
            return await self._explain(jid, task)
        part, local = self._locate(whole, task)
        out = await self._explain(part.job, local)
        out.update(job=jid.hex(), task=task,
                   part={"part": part.index, "parts": len(whole.parts), "job": part.job.hex(),
                         "shard": part.shard, "task": local})
        return out

    def _locate(self, whole: WholeJob, task: int) -> tuple[Any, int]:
        try:
            return locate(whole.parts, task)
        except IndexError:
            raise RpcError(NOT_FOUND, f"job {whole.id.hex()[:12]} has no task {task} "
                                      f"(it has {whole.tasks})") from None

    async def _explain(self, jid: bytes, task: int) -> dict[str, Any]:
        reply = await self._ledger(self._shard(jid), ops.Query(jid, task, 1, True))
        if not reply["tasks"]:
            raise RpcError(NOT_FOUND, f"job {jid.hex()[:12]} has no task {task} "
                                      f"(it has {reply['counts']['tasks']})")
        row = reply["tasks"][0]
        return {"job": jid.hex(), "task": task, "state": row["state"], "quorum": row["quorum"],
                "agreed": row.get("agreed", 0), "outcome": row.get("outcome"),
                "submitted_ms": reply["submitted_ms"],
                "replicas": [{**r, "result": _result(r["result"])} for r in row["replicas"]],
                "explanation": row["explanation"]}

    async def rpc_result(self, params: dict[str, Any]) -> dict[str, Any]:
        """Every certified output, written under the job's own task indices (a split job's
        parts' tasks shifted back), with the certificates and ``job.json`` (and its parts)."""
        only(params, "job", "out")
        jid = self._find(params)
        out = Path(get(params, "out", str))
        whole = self.wholes.jobs.get(jid)
        local: Any = whole or self.submitter.jobs.get(jid)
        if local is None:
            raise RpcError(NOT_FOUND, "results are kept by the node that submitted the job")
        if not out.is_absolute():
            raise RpcError(REJECTED, "give the output directory as an absolute path")
        got = Gathered()
        for part in ([jid] if whole is None else [p.job for p in whole.parts]):
            await self.submitter.gather_votes(part)
        if whole is None:
            await self._gather(jid, local.tasks, 0, got)
        else:
            for p in whole.parts:
                await self._gather(p.job, p.count, p.first, got)
        chain = self.ledger.chain_before(max((c.epoch for c in got.certs), default=0))
        return await trio.to_thread.run_sync(write_results, out, local, got,
                                             whole.to_json() if whole else None,
                                             self.ledger.network, chain)

    async def _gather(self, jid: bytes, tasks: int, first: int, got: Gathered) -> None:
        """Job ``jid``'s certified results into ``got``, as the tasks ``first, first + 1, ...``."""
        for task in range(tasks):
            cert = self.submitter.certificate(jid, task)
            if cert is None:
                got.missing.append(first + task)
                continue
            workers = self.submitter.workers_of(jid, task)
            data = await self.submitter.output(cert, workers)
            if data is None or hashlib.sha256(data).digest() != cert.output_hash:
                got.unfetched.append(first + task)
                continue
            got.certs.append(cert)
            got.outputs[first + task] = data
            err = await self.submitter.stderr(cert, workers)
            if err:
                got.stderrs[first + task] = err
            if cert.status != TaskStatus.OK:
                got.failed[first + task] = failure_row(cert, err)

    async def rpc_logs(self, params: dict[str, Any]) -> dict[str, Any]:
        """A task's stderr (base64), checked against its certificate; without ``task``, those
        of the failed tasks (at most ``MAX_LOGS``). A split job's tasks by their own index."""
        only(params, "job", "task")
        jid = self._find(params)
        whole = self.wholes.jobs.get(jid)
        local: Any = whole or self.submitter.jobs.get(jid)
        if local is None:
            raise RpcError(NOT_FOUND, "task logs are kept by the node that submitted the job")
        parts = whole.parts if whole else [Part(0, 0, local.tasks, local.shard, jid)]
        task = params.get("task")
        if task is not None:
            task = get(params, "task", int)
            if not 0 <= task < local.tasks:
                raise RpcError(NOT_FOUND, f"job {jid.hex()[:12]} has no task {task} "
                                          f"(it has {local.tasks})")
            part, i = locate(parts, task)
            return {"tasks": [await self._log_entry(part.job, i, task)], "more": 0}
        wanted = [(p, t) for p in parts if (j := self.submitter.jobs.get(p.job)) is not None
                  for t in sorted(j.certified)
                  if (c := self.submitter.certificate(p.job, t)) is not None and c.status != TaskStatus.OK]
        return {"tasks": [await self._log_entry(p.job, t, p.first + t) for p, t in wanted[:MAX_LOGS]],
                "more": max(0, len(wanted) - MAX_LOGS)}

    async def _log_entry(self, jid: bytes, task: int, shown: int) -> dict[str, Any]:
        """Job ``jid``'s ``task``, shown to the user as task ``shown`` (its whole job's index)."""
        import base64

        cert = self.submitter.certificate(jid, task)
        if cert is None:
            reply = await self._ledger(self._shard(jid), ops.Query(jid, task, 1, True))
            row = reply["tasks"][0] if reply["tasks"] else {"state": "unknown", "replicas": []}
            said = "; ".join(f"{r['worker'][-8:]}: {r['detail']}" for r in row.get("replicas", [])
                             if r.get("detail"))
            return {"task": shown, "status": row.get("outcome", row["state"]).upper(), "exit_code": 0,
                    "detail": f"no certified result ({row['state']})", "stderr": None,
                    "note": f"task {shown} has no certified result yet ({row['state']})"
                            + (f"; replicas said: {said}" if said else "")}
        err = await self.submitter.stderr(cert, self.submitter.workers_of(jid, task))
        entry = failure_row(cert, err)
        entry["task"] = shown
        if err is None:
            entry.update(stderr=None, note="its stderr could not be fetched from its workers yet")
        elif cert.agreed is None:
            entry.update(stderr=None, note="certified before stderr was kept with results")
        else:
            entry["stderr"] = base64.b64encode(err).decode()
            if not err:
                entry["note"] = "its stderr is empty"
        return entry


MAX_LOGS = 20


def _result(r: Any) -> Any:
    if not r:
        return None
    status, digest, size, exit_code, *_ = r
    return {"status": TaskStatus(status).name, "exit_code": exit_code,
            "output_sha256": digest.hex(), "size": size}


def _task_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"task": r["i"], "state": r["state"], "running": r["running"],
            "result": _result(r["result"]), "agreed": r.get("agreed", 0), "outcome": r.get("outcome")}

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
from daemon.jobs.spec import SpecError, load_spec
from daemon.jobs.submitter import SubmitterDuties, Unplaceable
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
TICK_S = 0.5
SPLIT_HINT_TASKS = 10_000
"""From this many tasks, ``submit`` on a multi-shard network says that one shard orders them."""


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
        self.member = MemberDuties(identity, self.ledger, self, soft, self.clock)
        self.worker = WorkerDuties(pool, blobs, self.ledger, self)
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
                    with trio.move_on_after(TICK_S):
                        await self.member.wake.wait()
                    self.member.wake = trio.Event()
            finally:
                with trio.CancelScope(shield=True):
                    await self.worker.leave("the node is shutting down")

    def status(self) -> dict[str, Any]:
        sub, mem, wrk = self.submitter.status(), self.member.status(), self.worker.status()
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
        matches = [j for j in self.submitter.jobs if j.hex().startswith(text)]
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
        try:
            job, reply = await self.submitter.submit_job(spec)
        except Unplaceable as err:
            raise RpcError(REJECTED, f"{spec.source}: no current network can place this job: "
                                     f"{err}") from None
        except Exception as err:  # noqa: BLE001
            raise RpcError(UNAVAILABLE, f"could not submit: {err}") from None
        if "error" in reply:
            raise RpcError(REJECTED, f"the committee refused the job: {reply['error']}")
        out = {"job": job.id.hex(), "tasks": job.tasks, "shard": job.shard, "name": job.name}
        committee = self.committees.epoch.committees.get(job.shard, ())
        shards = len(self.committees.shards)
        if len(committee) == 1:  # a one-node network is valid, but nobody else checks it
            out["notice"] = ("this network's committee has one member: results are checked "
                             "by nobody else")
        elif shards > 1 and job.tasks >= SPLIT_HINT_TASKS:
            # A job lives in one shard's ledger: its committee alone orders every placement and
            # result. Splitting one job into per-shard sub-jobs would need one result view and
            # certificates across shards; until then, say so rather than let the user think
            # the network's every committee is working on it.
            out["notice"] = (f"one job is ordered by one shard's committee: all {job.tasks:,} "
                             f"tasks go through shard {job.shard}'s, while this network has "
                             f"{shards} shards; to spread a job this large over every "
                             f"committee, submit it as {shards} jobs (split its inputs)")
        return out

    async def rpc_list(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params)
        jobs = sorted(self.submitter.jobs.values(), key=lambda j: j.submitted_ms, reverse=True)
        return {"jobs": [{"job": j.id.hex(), "name": j.name, "tasks": j.tasks,
                          "certified": len(j.certified), "submitted_ms": j.submitted_ms,
                          "shard": j.shard} for j in jobs]}

    async def rpc_status(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "job", "tasks")
        jid = self._find(params)
        want_tasks = get(params, "tasks", bool, False)
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
        reply = await self._ledger(self._shard(jid), ops.Cancel(jid))
        return {"job": jid.hex(), "state": reply["state"]}

    async def rpc_explain(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "job", "task")
        jid = self._find(params)
        task = get(params, "task", int)
        reply = await self._ledger(self._shard(jid), ops.Query(jid, task, 1, True))
        if not reply["tasks"]:
            raise RpcError(NOT_FOUND, f"job {jid.hex()[:12]} has no task {task} "
                                      f"(it has {reply['counts']['tasks']})")
        row = reply["tasks"][0]
        return {"job": jid.hex(), "task": task, "state": row["state"], "quorum": row["quorum"],
                "agreed": row.get("agreed", 0), "outcome": row.get("outcome"),
                "replicas": [{**r, "result": _result(r["result"])} for r in row["replicas"]],
                "explanation": row["explanation"]}

    async def rpc_result(self, params: dict[str, Any]) -> dict[str, Any]:
        only(params, "job", "out")
        jid = self._find(params)
        out = Path(get(params, "out", str))
        local = self.submitter.jobs.get(jid)
        if local is None:
            raise RpcError(NOT_FOUND, "results are kept by the node that submitted the job")
        if not out.is_absolute():
            raise RpcError(REJECTED, "give the output directory as an absolute path")
        certs, missing, unfetched = [], [], []
        outputs: dict[int, bytes] = {}
        stderrs: dict[int, bytes] = {}
        failed: dict[int, dict[str, Any]] = {}
        for task in range(local.tasks):
            cert = self.submitter.certificate(jid, task)
            if cert is None:
                missing.append(task)
                continue
            workers = self.submitter.workers_of(jid, task)
            data = await self.submitter.output(cert, workers)
            if data is None or hashlib.sha256(data).digest() != cert.output_hash:
                unfetched.append(task)
                continue
            certs.append(cert)
            outputs[task] = data
            err = await self.submitter.stderr(cert, workers)
            if err:
                stderrs[task] = err
            if cert.status != TaskStatus.OK:
                failed[task] = failure_row(cert, err)
        return await trio.to_thread.run_sync(_write_results, out, local, certs, outputs, stderrs,
                                             missing, unfetched, failed)

    async def rpc_logs(self, params: dict[str, Any]) -> dict[str, Any]:
        """A task's stderr (base64), checked against its certificate; without ``task``, those
        of the failed tasks (at most ``MAX_LOGS``)."""
        only(params, "job", "task")
        jid = self._find(params)
        local = self.submitter.jobs.get(jid)
        if local is None:
            raise RpcError(NOT_FOUND, "task logs are kept by the node that submitted the job")
        task = params.get("task")
        if task is not None:
            task = get(params, "task", int)
            if not 0 <= task < local.tasks:
                raise RpcError(NOT_FOUND, f"job {jid.hex()[:12]} has no task {task} "
                                          f"(it has {local.tasks})")
            return {"tasks": [await self._log_entry(jid, task)], "more": 0}
        wanted = [t for t in sorted(local.certified)
                  if (c := self.submitter.certificate(jid, t)) is not None and c.status != TaskStatus.OK]
        return {"tasks": [await self._log_entry(jid, t) for t in wanted[:MAX_LOGS]],
                "more": max(0, len(wanted) - MAX_LOGS)}

    async def _log_entry(self, jid: bytes, task: int) -> dict[str, Any]:
        import base64

        cert = self.submitter.certificate(jid, task)
        if cert is None:
            reply = await self._ledger(self._shard(jid), ops.Query(jid, task, 1, True))
            row = reply["tasks"][0] if reply["tasks"] else {"state": "unknown", "replicas": []}
            said = "; ".join(f"{r['worker'][-8:]}: {r['detail']}" for r in row.get("replicas", [])
                             if r.get("detail"))
            return {"task": task, "status": row.get("outcome", row["state"]).upper(), "exit_code": 0,
                    "detail": f"no certified result ({row['state']})", "stderr": None,
                    "note": f"task {task} has no certified result yet ({row['state']})"
                            + (f"; replicas said: {said}" if said else "")}
        err = await self.submitter.stderr(cert, self.submitter.workers_of(jid, task))
        entry = failure_row(cert, err)
        entry["task"] = task
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


def failure_row(cert: Any, stderr: bytes | None) -> dict[str, Any]:
    """A certified result in words: status, exit code, and the last line of its stderr."""
    status = TaskStatus(cert.status).name
    detail = status if cert.status == TaskStatus.OK else status.lower().replace("_", " ")
    if cert.status == TaskStatus.EXITED:
        detail = f"exited with code {cert.exit_code}"
    last = [ln for ln in (stderr or b"").decode("utf-8", "replace").splitlines() if ln.strip()]
    if last:
        detail += f"; stderr: {last[-1].strip()[:200]}"
    return {"status": status, "exit_code": cert.exit_code, "detail": detail}


def _result(r: Any) -> Any:
    if not r:
        return None
    status, digest, size, exit_code, *_ = r
    return {"status": TaskStatus(status).name, "exit_code": exit_code,
            "output_sha256": digest.hex(), "size": size}


def _task_row(r: dict[str, Any]) -> dict[str, Any]:
    return {"task": r["i"], "state": r["state"], "running": r["running"],
            "result": _result(r["result"]), "agreed": r.get("agreed", 0), "outcome": r.get("outcome")}


def _write_results(out: Path, job: Any, certs: list[Any], outputs: dict[int, bytes],
                   stderrs: dict[int, bytes], missing: list[int], unfetched: list[int],
                   failed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Every certified stdout as ``tasks/N.out`` (failed tasks' too: `verify` checks them),
    non-empty stderr as ``tasks/N.err``; the combined ``output`` holds the OK tasks only."""
    import json

    from daemon.ledger.certificate import dumps

    out.mkdir(parents=True, exist_ok=True)
    width = len(str(max(job.tasks - 1, 0)))
    tasks_dir = out / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    for task, data in outputs.items():
        (tasks_dir / f"{task:0{width}d}.out").write_bytes(data)
    for task, data in stderrs.items():
        (tasks_dir / f"{task:0{width}d}.err").write_bytes(data)
    if job.combine == "concat":
        (out / "output").write_bytes(b"".join(outputs[t] for t in sorted(outputs) if t not in failed))
    (out / "certificates.json").write_text(dumps(certs))
    (out / "job.json").write_text(json.dumps({
        "job": job.id.hex(), "name": job.name, "tasks": job.tasks, "certified": len(certs),
        "ok": len(outputs) - len(failed), "failed": {str(t): f for t, f in sorted(failed.items())},
        "missing": missing, "unfetched": unfetched}, indent=1))
    return {"job": job.id.hex(), "dir": str(out), "written": len(outputs), "tasks": job.tasks,
            "ok": len(outputs) - len(failed), "failed": {str(t): f for t, f in sorted(failed.items())},
            "missing": missing, "unfetched": unfetched}

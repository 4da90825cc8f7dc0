"""The Python client: one typed door to a running daemon's control socket.

``Client`` is blocking (scripts, notebooks); ``AsyncClient`` has the same methods as
coroutines for trio programs (each call runs the blocking one in a worker thread, so the trio
loop never blocks on the socket or on waiting for results).

``map(script, inputs)`` is the researcher's one-liner: it writes a job spec for the script (and
any ``files``) into a private temporary directory, submits it (the daemon reads and keeps the
files), then yields each task's ``Result`` as soon as its certificate is in, in completion
order. Every result is verified before it is yielded: the output's SHA-256 must be the one the
committee certified, and, given the network's ``genesis``, the certificate's 2f+1 signatures
must come from the task's committee (``daemon.ledger.certificate.verify_certificate``, the check
``novacron verify`` makes). A task that fails for good raises ``JobFailed`` (or is yielded,
with ``raise_on_failure=False``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from daemon.control.client import ControlClient, ControlError
from daemon.storage.datadir import default_data_dir

TERMINAL = ("done", "failed", "cancelled", "expired", "refused", "gone")


class NovaCronError(Exception):
    """The daemon refused or could not be reached; ``str()`` is one line saying why."""


class JobFailed(NovaCronError):
    """A task ended without an agreed, successful result."""


@dataclass(frozen=True)
class Result:
    job: str
    task: int
    output: bytes
    status: str
    output_sha256: str
    certificate: dict[str, Any]
    checks: tuple[str, ...]
    """What was verified, one line each (all passed, or the result would not be here)."""

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


def _spec_text(name: str, script: str, files: Sequence[str], inputs_file: str,
               replicas: int, quorum: int | None, limits: dict[str, Any]) -> str:
    lines = ["[job]", f"name = {json.dumps(name)}", f"script = {json.dumps(script)}"]
    if files:
        lines.append(f"files = {json.dumps(list(files))}")
    lines += ["", "[inputs]", f"lines = {json.dumps(inputs_file)}", "", "[replication]",
              f"replicas = {replicas}", f"quorum = {quorum if quorum is not None else replicas}"]
    if limits:
        lines += ["", "[limits]"] + [f"{k} = {json.dumps(v)}" for k, v in limits.items()]
    return "\n".join(lines) + "\n"


class Client:
    """A connection to one daemon. ``data_dir`` or ``socket`` name it; by default the node
    at ``$NOVACRON_HOME`` (or ``~/.local/share/novacron``)."""

    def __init__(self, data_dir: str | Path | None = None, *, socket: str | Path | None = None,
                 genesis: str | Path | None = None, timeout: float = 60.0) -> None:
        base = Path(data_dir) if data_dir is not None else default_data_dir()
        self.socket = Path(socket) if socket is not None else base / "control.sock"
        self.genesis = Path(genesis) if genesis is not None else None
        self.timeout = timeout
        self._rpc: ControlClient | None = None

    # -- plumbing --------------------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._rpc is not None:
            self._rpc.close()
            self._rpc = None

    def call(self, method: str, **params: Any) -> Any:
        """One JSON-RPC call (see docs/control-socket.md)."""
        try:
            if self._rpc is None:
                self._rpc = ControlClient(self.socket, timeout=self.timeout)
            return self._rpc.call(method, params or None)
        except ControlError as err:
            self.close()  # a broken connection is reopened on the next call
            raise NovaCronError(str(err)) from None

    # -- jobs ------------------------------------------------------------------------------------

    def submit(self, spec: str | Path) -> str:
        """Submit a job spec (TOML, see docs/jobs.md); returns the job id (64 hex digits)."""
        return str(self.call("jobs.submit", spec=str(Path(spec).resolve()))["job"])

    def submit_script(self, script: str | Path, inputs: Iterable[str | bytes], *,
                      files: Sequence[str | Path] = (), replicas: int = 2,
                      quorum: int | None = None, name: str | None = None,
                      **limits: Any) -> str:
        """Submit ``script`` with one task per input (each one line of text, given on the
        task's stdin); ``files`` are extra modules or data files (paths relative to the
        script's directory, or absolute ones inside it). ``limits``: fuel, memory_mb, wall_s,
        max_output_bytes. Returns the job id."""
        script = Path(script).resolve()
        base = script.parent
        rel_files = [str(Path(f).resolve().relative_to(base)) if Path(f).is_absolute()
                     else str(f) for f in files]
        lines = [i.decode() if isinstance(i, bytes) else str(i) for i in inputs]
        for line in lines:
            if "\n" in line.rstrip("\n"):
                raise NovaCronError("each input must be one line of text")
        with tempfile.TemporaryDirectory(prefix=".novacron-", dir=base) as tmp:
            inputs_file = Path(tmp) / "inputs.txt"
            inputs_file.write_text("".join(line.rstrip("\n") + "\n" for line in lines))
            spec = base / f"{Path(tmp).name}.toml"
            spec.write_text(_spec_text(name or script.stem, script.name, rel_files,
                                       str(inputs_file), replicas, quorum, limits))
            try:
                os.chmod(spec, 0o600)
                return self.submit(spec)
            finally:
                spec.unlink(missing_ok=True)

    def status(self, job: str | None = None, *, tasks: bool = False) -> dict[str, Any]:
        """The node's status, or a job's (with ``tasks``: every task's state and result)."""
        if job is None:
            return dict(self.call("status"))
        return dict(self.call("jobs.status", job=job, tasks=tasks))

    def cancel(self, job: str) -> dict[str, Any]:
        return dict(self.call("jobs.cancel", job=job))

    def result(self, job: str, out: str | Path | None = None) -> list[Result]:
        """Every certified result so far, verified, in task order. ``out``: also keep the
        files ``novacron result`` writes (outputs, certificates.json) there."""
        if out is not None:
            return self._fetch(job, Path(out).resolve())
        with tempfile.TemporaryDirectory(prefix="novacron-result-") as tmp:
            return self._fetch(job, Path(tmp))

    def _fetch(self, job: str, out: Path) -> list[Result]:
        from daemon.errors import DaemonError
        from daemon.jobs.results import load_chain
        from daemon.jobs.split import parts_of, whole_id
        from daemon.ledger.certificate import ResultCertificate, verify_certificate

        self.call("jobs.result", job=job, out=str(out))
        genesis = None
        docs = json.loads((out / "certificates.json").read_text())
        certs = [ResultCertificate.from_json(d) for d in docs]
        if self.genesis is not None and certs:
            from daemon.genesis import load_genesis

            genesis = load_genesis(self.genesis, certs[0].network)
        try:
            chain = load_chain(out, genesis)  # followed once for all the certificates
        except DaemonError as err:
            raise NovaCronError(str(err)) from None
        info = json.loads((out / "job.json").read_text())
        width = len(str(max(int(info["tasks"]) - 1, 0)))
        parts = parts_of(info)  # a job split across shards: certificates name its parts
        if parts is not None and whole_id(parts).hex() != info["job"]:
            raise NovaCronError(f"job {info['job'][:12]}: its parts do not hash to its id")
        by_job = {p.job: p for p in parts or ()}
        results = []
        for doc, cert in zip(docs, certs):
            task = cert.task
            if parts is not None:
                part = by_job.get(cert.job)
                if part is None or cert.task >= part.count:
                    raise NovaCronError(f"a certificate for job {cert.job.hex()[:12]} task "
                                        f"{cert.task} is not one of job {info['job'][:12]}'s")
                task = part.first + cert.task
            path = out / "tasks" / f"{task:0{width}d}.out"
            data = path.read_bytes() if path.exists() else None
            checks = verify_certificate(cert, genesis, data, None, chain)
            if data is None or not all(c.ok for c in checks):
                bad = [c.what for c in checks if not c.ok] or ["output missing"]
                raise NovaCronError(f"task {task}: result failed verification: {bad[0]}")
            results.append(Result(info["job"], task, data, "OK", doc.get("output_sha256", ""),
                                  doc, tuple(c.what for c in checks)))
        return sorted(results, key=lambda r: r.task)

    def wait(self, job: str, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
        """Block until the job is finished (done, failed, cancelled or expired)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.status(job)
            if st["state"] in TERMINAL:
                return st
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job[:12]} still {st['state']} after {timeout} s")
            time.sleep(poll)

    def as_completed(self, job: str, *, timeout: float | None = None, poll: float = 0.5,
                     raise_on_failure: bool = True) -> Iterator[Result]:
        """Yield each task's verified result as its certificate arrives."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: set[int] = set()
        while True:
            st = self.status(job, tasks=True)
            fresh = [t["task"] for t in st.get("tasks", [])
                     if t["state"] == "accepted" and t["task"] not in seen]
            failed = [t for t in st.get("tasks", []) if t["state"] == "failed"
                      and t["task"] not in seen]
            if fresh:
                for r in self.result(job):
                    if r.task in fresh:
                        seen.add(r.task)
                        yield r
            for t in failed:
                seen.add(t["task"])
                res = t.get("result") or {}
                if raise_on_failure:
                    raise JobFailed(f"job {job[:12]} task {t['task']} failed: "
                                    f"{res.get('status', 'no agreed result')}")
                yield Result(job, t["task"], b"", str(res.get("status", "FAILED")),
                             str(res.get("output_sha256", "")), {}, ())
            total = st["counts"]["tasks"]
            if len(seen) >= total or st["state"] in ("cancelled", "expired"):
                return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job[:12]}: {len(seen)} of {total} results after "
                                   f"{timeout} s")
            time.sleep(poll)

    def map(self, script: str | Path, inputs: Iterable[str | bytes], *, replicas: int = 2,
            files: Sequence[str | Path] = (), timeout: float | None = None,
            raise_on_failure: bool = True, **limits: Any) -> Iterator[Result]:
        """Run ``script`` once per input on the network; yield verified results in completion
        order (``r.task`` is the input's index)."""
        job = self.submit_script(script, inputs, files=files, replicas=replicas, **limits)
        return self.as_completed(job, timeout=timeout, raise_on_failure=raise_on_failure)


class AsyncClient:
    """``Client``'s methods as trio coroutines; ``map`` is an async iterator."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.sync = Client(*args, **kwargs)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.sync.close()

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        import trio

        return await trio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    async def submit(self, spec: str | Path) -> str:
        return str(await self._run(self.sync.submit, spec))

    async def submit_script(self, script: str | Path, inputs: Iterable[str | bytes],
                            **kwargs: Any) -> str:
        return str(await self._run(self.sync.submit_script, script, list(inputs), **kwargs))

    async def status(self, job: str | None = None, *, tasks: bool = False) -> dict[str, Any]:
        return dict(await self._run(self.sync.status, job, tasks=tasks))

    async def cancel(self, job: str) -> dict[str, Any]:
        return dict(await self._run(self.sync.cancel, job))

    async def result(self, job: str, out: str | Path | None = None) -> list[Result]:
        return list(await self._run(self.sync.result, job, out))

    async def map(self, script: str | Path, inputs: Iterable[str | bytes], *,
                  poll: float = 0.5, **kwargs: Any) -> Any:
        """``async for r in client.map(...)``: verified results in completion order."""
        import trio

        job = await self.submit_script(script, inputs, **{k: v for k, v in kwargs.items()
                                                          if k not in ("timeout",
                                                                       "raise_on_failure")})
        iterator = self.sync.as_completed(job, poll=poll, timeout=kwargs.get("timeout"),
                                          raise_on_failure=kwargs.get("raise_on_failure", True))
        sentinel = object()
        while True:
            item = await trio.to_thread.run_sync(lambda: next(iterator, sentinel))
            if item is sentinel:
                return
            yield item

"""A job's result directory, as ``novacron result`` writes it and ``novacron verify`` reads it.

::

    DIR/tasks/N.out         every certified stdout (failed tasks' too: ``verify`` checks them)
    DIR/tasks/N.err         a non-empty certified stderr
    DIR/output              the OK tasks' stdout in task order (``[result] combine = "concat"``)
    DIR/certificates.json   one certificate per written task
    DIR/epoch_chain.json    the epoch notices from the genesis to the certificates' latest
                            epoch, once for all of them (``daemon.ledger.certificate``)
    DIR/job.json            the job: id, name, counts, failed/missing tasks, and for a job split
                            across shards its ``parts`` (each part's job id, shard and first task)

``N`` is always the job's own task index: a split job's part certificates name their part's job
and the task's index within it, and ``job.json``'s parts map them back (``daemon.jobs.split``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.messages.tasks import TaskStatus


@dataclass
class Gathered:
    """What the submitter holds of a job's results, by the job's own task index."""
    certs: list[Any] = field(default_factory=list)
    outputs: dict[int, bytes] = field(default_factory=dict)
    stderrs: dict[int, bytes] = field(default_factory=dict)
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)
    unfetched: list[int] = field(default_factory=list)


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


def write_results(out: Path, job: Any, got: Gathered, parts: list[dict[str, Any]] | None,
                  network: str, chain: tuple[bytes, ...]) -> dict[str, Any]:
    """Write the directory (see the module's docstring); the summary ``result`` returns."""
    from daemon.ledger.certificate import chain_doc, dumps

    out.mkdir(parents=True, exist_ok=True)
    width = len(str(max(job.tasks - 1, 0)))
    tasks_dir = out / "tasks"
    tasks_dir.mkdir(exist_ok=True)
    for task, data in got.outputs.items():
        (tasks_dir / f"{task:0{width}d}.out").write_bytes(data)
    for task, data in got.stderrs.items():
        (tasks_dir / f"{task:0{width}d}.err").write_bytes(data)
    if job.combine == "concat":
        (out / "output").write_bytes(b"".join(got.outputs[t] for t in sorted(got.outputs)
                                              if t not in got.failed))
    (out / "certificates.json").write_text(dumps(got.certs))
    (out / "epoch_chain.json").write_text(json.dumps(chain_doc(network, chain)))
    failed = {str(t): f for t, f in sorted(got.failed.items())}
    summary = {"ok": len(got.outputs) - len(got.failed), "failed": failed,
               "missing": got.missing, "unfetched": got.unfetched}
    info: dict[str, Any] = {"job": job.id.hex(), "name": job.name, "tasks": job.tasks,
                            "certified": len(got.certs), **summary}
    if parts:
        info["parts"] = parts
    (out / "job.json").write_text(json.dumps(info, indent=1))
    return {"job": job.id.hex(), "dir": str(out), "written": len(got.outputs), "tasks": job.tasks,
            "parts": parts, **summary}


MAX_CHAIN_BYTES = 1 << 30
"""The most ``epoch_chain.json`` read (hex: twice the notices; one notice per epoch, the first
whole, ~10-770 KB from 100 to 10,000 members)."""


def load_chain(out: Path, genesis: Any) -> Any:
    """The epoch chain of a result directory, followed from ``genesis`` as certificates ask
    (``ChainFollower``); None without a genesis or without the file (certificates written
    before carry their own). ``UserFileError`` / ``CertificateError`` if it cannot be read."""
    from daemon.ledger.certificate import CertificateError, chain_from_doc
    from daemon.storage.userfile import UserFileError, read_capped_text

    if genesis is None:
        return None
    path = out / "epoch_chain.json"
    try:
        doc = json.loads(read_capped_text(path, MAX_CHAIN_BYTES))
    except UserFileError as err:
        if err.missing:
            return None
        raise UserFileError(f"{path} {err}") from None
    except ValueError as err:
        raise CertificateError(f"{path} is not valid JSON: {err}") from None
    return chain_from_doc(doc, genesis)

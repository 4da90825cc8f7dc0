"""``novacron submit | jobs | status JOB | watch JOB | result JOB | logs JOB [TASK] | cancel JOB
| explain JOB TASK | verify DIR``: a researcher's commands.

``watch``, ``status JOB`` and ``result`` count tasks that succeeded (``OK``) apart from tasks
whose agreed outcome is a failure (``EXITED``, ``TRAPPED``, ...) or that got no agreed result
at all, and exit non-zero when any failed."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from daemon.cli.common import WIDTH, add_client_args, call, print_json, wrap, wrap_lines
from daemon.cli.errors import CliError
from daemon.cli.fl import cancel_run, is_run, result_run, status_run, watch_run
from daemon.jobs.split import Part, parts_of, spread_words
from protocol.identity import short_node_id
from protocol.messages.tasks import TaskStatus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a job (a TOML spec, see examples/); prints its id")
    p.add_argument("spec", type=Path)
    p.add_argument("--wait", action="store_true",
                   help="then watch it until it ends; exit 1 if any task failed")
    p.add_argument("--interval", type=float, default=1.0, help="with --wait: seconds between updates")
    add_client_args(p)
    p.set_defaults(func=submit_cmd)

    p = sub.add_parser("check", help="check a job spec offline, as submit would; one line per problem")
    p.add_argument("spec", type=Path)
    p.set_defaults(func=check_cmd)

    p = sub.add_parser("jobs", help="the jobs submitted from this node")
    add_client_args(p)
    p.set_defaults(func=jobs_cmd)

    p = sub.add_parser("status", help="this node (no JOB), or a job's progress")
    p.add_argument("job", nargs="?", help="job id (or a unique prefix of 6+ hex digits), or an"
                   " FL run's (fl-...)")
    p.add_argument("--tasks", action="store_true", help="list every task")
    add_client_args(p)
    p.set_defaults(func=status_cmd)

    p = sub.add_parser("describe", help="a job in words: what it runs, how it is checked, where it is")
    p.add_argument("job", help="job id (or a unique prefix of 6+ hex digits)")
    add_client_args(p)
    p.set_defaults(func=describe_cmd)

    p = sub.add_parser("watch", help="a live progress bar until the job ends (an FL run: a line"
                                     " per round)")
    p.add_argument("job")
    p.add_argument("--interval", type=float, default=1.0)
    add_client_args(p, json_flag=False)
    p.set_defaults(func=watch_cmd)

    p = sub.add_parser("result", help="write a job's outputs and certificates to a directory")
    p.add_argument("job")
    p.add_argument("-o", "--out", type=Path, required=True, help="output directory")
    add_client_args(p)
    p.set_defaults(func=result_cmd)

    p = sub.add_parser("cancel", help="cancel a job you submitted")
    p.add_argument("job")
    add_client_args(p)
    p.set_defaults(func=cancel_cmd)

    p = sub.add_parser("explain", help="why these peers were chosen for a task")
    p.add_argument("job")
    p.add_argument("task", type=int)
    add_client_args(p)
    p.set_defaults(func=explain_cmd)

    p = sub.add_parser("verify", help="check results and their certificates offline")
    p.add_argument("dir", type=Path, help="a directory written by `novacron result`")
    p.add_argument("--genesis", type=Path, default=None,
                   help="the network's genesis: also check the signers were its committee")
    p.add_argument("--min-agree", type=int, default=None, metavar="N",
                   help="fail results fewer than N distinct volunteers agreed on")
    p.set_defaults(func=verify_cmd)

    p = sub.add_parser("logs", help="a task's stderr (each failed task's, without TASK)")
    p.add_argument("job")
    p.add_argument("task", type=int, nargs="?")
    add_client_args(p, json_flag=False)
    p.set_defaults(func=logs_cmd)


def submit_cmd(args: argparse.Namespace) -> int:
    if not args.spec.exists():
        raise CliError(f"job spec {args.spec} does not exist")
    res = call(args, "jobs.submit", {"spec": str(args.spec.resolve())}, timeout=120)
    if args.json:
        print_json(res)
    else:
        print(res["job"], flush=True)
        follow = "" if args.wait else f"; follow it with `novacron watch {res['job'][:12]}`"
        where = (f"split across {len(res['parts'])} shards" if res.get("parts")
                 else f"on shard {res['shard']}")
        print(f"submitted {res['name']!r}: {res['tasks']} tasks {where}{follow}", file=sys.stderr)
        if res.get("notice"):
            print(f"note: {res['notice']}", file=sys.stderr)
    if args.wait:
        args.job = res["job"]
        # With --json, stdout carries only the JSON answer; the progress goes to stderr.
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            return watch_cmd(args)
    return 0


def check_cmd(args: argparse.Namespace) -> int:
    """The submit checks without a daemon: every problem on its own line, exit 1 if any."""
    from daemon.jobs.spec import check_spec

    spec, problems = check_spec(args.spec)
    for problem in problems:
        print(f"novacron: {problem}", file=sys.stderr)
    if spec is None:
        return 1
    from daemon.jobs.split import AUTO_PART_TASKS

    split = (f", split across {spec.shards} shards" if spec.shards > 1 else
             ", split across shards on a network of several" if not spec.shards
             and len(spec.inputs) >= 2 * AUTO_PART_TASKS else "")
    print(f"{args.spec}: ok: {spec.name!r}, {len(spec.inputs):,} tasks{split}, {spec.replicas} "
          f"replicas (quorum {spec.quorum}), module {len(spec.module):,} bytes, deadline "
          f"{_duration(spec.deadline_s)}")
    return 0


def _duration(seconds: float) -> str:
    """``90`` -> ``1 min 30 s``; ``86400`` -> ``1 d``: the largest two units that are not zero."""
    parts, left = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if left >= size:
            parts.append(f"{left // size} {unit}")
            left %= size
    return " ".join(parts[:2]) or "0 s"


def jobs_cmd(args: argparse.Namespace) -> int:
    from daemon.cli.fl import runs_lines

    res = call(args, "jobs.list")
    if args.json:
        print_json({**res, "fl_runs": call(args, "fl.list")["runs"]})
        return 0
    runs = runs_lines(args)
    if runs:
        print(f"{'FL run':<15} {'name':<22} {'state':<9} rounds    submitted")
        print("\n".join(runs))
        if res["jobs"]:
            print()
    if not res["jobs"]:
        if not runs:
            print("no jobs submitted from this node yet (try `novacron submit examples/pi/job.toml`)")
        return 0
    print(f"{'job':<14} {'name':<24} {'tasks':>6} {'certified':>9}  submitted")
    for j in res["jobs"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["submitted_ms"] / 1000))
        spread = f"  (refused: {j['refused']})" if j.get("refused") else \
            f"  ({len(j['parts'])} shards)" if j.get("parts") else ""
        print(fit(f"{j['job'][:12]:<14} {j['name'][:24]:<24} {j['tasks']:>6} {j['certified']:>9}  "
                  f"{when}{spread}"))
    return 0


def failure_words(c: dict[str, Any]) -> str:
    """The failed tasks by kind, e.g. ``EXITED 3, NO_AGREEMENT 1`` (largest first)."""
    kinds = sorted(c.get("failures", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{k} {n}" for k, n in kinds)


def agreement_words(st: dict[str, Any]) -> str:
    """How many distinct volunteers agreed on the accepted results, e.g. ``agreed by: 2
    volunteers on 18 tasks, 1 volunteer on 2 tasks (quorum asked: 2, adaptive replication)``."""
    agreed = {int(k): n for k, n in st["counts"].get("agreed", {}).items()}
    if not agreed:
        return ""
    parts = [f"{k} volunteer{'s' if k != 1 else ''} on {n} task{'s' if n != 1 else ''}"
             for k, n in sorted(agreed.items(), reverse=True)]
    adaptive = ", adaptive replication" if st.get("adaptive") else ""
    return "agreed by: " + ", ".join(parts) + f" (quorum asked: {st['quorum']}{adaptive})"


def _line(st: dict[str, Any]) -> str:
    c = st["counts"]
    failed = f"{c['failed']} failed" + (f" ({failure_words(c)})" if c.get("failures") else "")
    return (f"{st['name']}: {st['state']}: {c.get('ok', c['accepted'])}/{c['tasks']} ok, {failed}, "
            f"{c['running']} running"
            + (f" ({c['checkpointed']} checkpointed)" if c.get("checkpointed") else "")
            + (f", {st['certified']} certified" if st.get("certified") is not None else ""))


def status_cmd(args: argparse.Namespace) -> int:
    if args.job is None:
        from daemon.cli.node import status_cmd as node_status

        return node_status(args)
    if is_run(args.job):
        return status_run(args)
    st = call(args, "jobs.status", {"job": args.job, "tasks": args.tasks}, timeout=60)
    if args.json:
        print_json(st)
        return 1 if st["counts"]["failed"] else 0
    print(f"job {st['job']}")
    print(_line(st))
    if st.get("refused"):
        print(wrap(f"refused: {st['refused']}", 4))
    if st.get("parts"):
        print(wrap(spread_words(st["parts"]), 4))
    if agreement_words(st):
        print(agreement_words(st))
    if st.get("waiting"):
        print(f"waiting: {st['waiting']}")
    for t in st.get("tasks", []):
        r = t["result"]
        res = _result_words(r, size=True) if r else ""
        agreed = f"  agreed by {t['agreed']}" if t.get("agreed") else ""
        print(f"  task {t['task']:>5}  {t['state']:<9} {('running' if t['running'] else ''):<8} {res}{agreed}")
    return 1 if st["counts"]["failed"] else 0


_STATE_WORDS = {
    "loading": "the committee has some of its inputs and waits for the rest",
    "open": "tasks are placed, run and checked as volunteers come",
    "done": "every task has an agreed result or has failed",
    "cancelled": "by its submitter",
    "expired": "past its deadline",
}


def describe_cmd(args: argparse.Namespace) -> int:
    """The job's spec and state in words (``kubectl describe``, ``bacalhau describe``)."""
    _job_not_run(args.job, "describe")
    st = call(args, "jobs.status", {"job": args.job}, timeout=60)
    local = next((j for j in call(args, "jobs.list")["jobs"] if j["job"] == st["job"]), None)
    if args.json:
        print_json({**st, "local": local})
        return 0
    c = st["counts"]
    spec = st.get("spec") or {}
    ms = st.get("now_ms") or time.time() * 1000

    def when(t_ms: float) -> str:
        if not t_ms:  # the ledger starts a job submitted to an idle shard at its next clock reading
            return "when its committee next reads the clock (within seconds)"
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t_ms / 1000))
        delta = (t_ms - ms) / 1000
        return f"{stamp} ({_duration(abs(delta))} {'ago' if delta <= 0 else 'from now'})"

    rows = [("job", st["job"]), ("name", st["name"]),
            ("state", f"{st['state']} ({_STATE_WORDS[st['state']]})" if st["state"] in _STATE_WORDS
             else st["state"])]
    if local is not None:
        shard = local.get("shard")
        rows.append(("submitted", f"{when(st['submitted_ms'])} from this node"
                     + (f", ordered by the shard {shard} committee" if shard is not None else "")))
        if st.get("parts"):
            rows.append(("spread", spread_words(st["parts"]) + "; each part is a job of its own "
                         "with every setting as asked, ordered by its shard's committee"))
    else:
        rows.append(("submitted", f"{when(st['submitted_ms'])} by node {short_node_id(st['submitter'])}"))
    rows.append(("deadline", when(st["deadline_ms"])))
    if spec.get("module_hash"):
        argv = " ".join(spec["argv"]) + (" ..." if spec.get("argv_truncated") else "")
        rows.append(("module", f"{spec.get('runtime', 'wasm32-wasi')}, sha256 "
                     f"{spec['module_hash'][:16]}, {spec['module_size']:,} bytes; argv {argv}"))
    rows.append(("checking", f"each task runs on {st['replicas']} volunteers; a result is accepted "
                 f"when {st['quorum']} agree" + (f" (at most {spec['max_replicas']} tries)"
                                                 if spec.get("max_replicas") else "")))
    if spec.get("fuel"):
        rows.append(("limits", f"fuel {spec['fuel']:,}, memory {spec['memory_pages'] // 16} MiB, "
                     f"wall {spec['wall_ms'] / 1000:g} s, output {spec['max_output']:,} bytes"))
    ok = f" ({c['ok']:,} ok)" if "ok" in c else ""
    kinds = ", ".join(f"{n} {k}" for k, n in (c.get("failures") or {}).items())
    rows.append(("tasks", f"{c['tasks']:,}: {c['accepted']:,} accepted{ok}, {c['failed']:,} failed"
                 + (f" ({kinds})" if kinds else "") + f", {c['cancelled']:,} cancelled, "
                 f"{c['open']:,} to do ({c['running']:,} running)"))
    if st.get("certified") is not None:
        rows.append(("results", f"{st['certified']:,} certified results held here; "
                     f"`novacron result {st['job'][:12]} -o DIR` writes them"))
    for key, value in rows:
        print(wrap(f"{key:<10} {value}", indent=11))
    return 0


def _result_words(result: dict[str, Any], *, size: bool = False) -> str:
    code = f" (exit {result['exit_code']})" if result.get("exit_code") else ""
    nbytes = f" {result['size']} B" if size else ""
    return f"{result['status']}{code}{nbytes} sha256 {result['output_sha256'][:16]}"


def _bar(done: int, running: int, failed: int, total: int, width: int = 40) -> str:
    if total == 0:
        return "[" + " " * width + "]"
    d = done * width // total
    f = failed * width // total
    r = min(width - d - f, running * width // total)
    return "[" + "#" * d + "!" * f + ">" * r + "." * (width - d - f - r) + "]"


PATIENCE_S = 300.0


def _job_not_run(ident: str, command: str) -> None:
    """``describe``, ``explain`` and ``logs`` take a job: an FL run's rounds are jobs."""
    if is_run(ident):
        raise CliError(f"{command} takes a job id; {ident} is an FL run, whose rounds are jobs:"
                       f" `novacron status {ident}` names the current round's job, and"
                       " history.json every round's")


def fit(line: str, width: int = WIDTH) -> str:
    """``line`` cut to ``width`` columns (a progress line is rewritten in place: no wrapping)."""
    return line if len(line) <= width else line[:width - 3] + "..."


def watch_line(ok: int, c: dict[str, Any], eta: str, waiting: str | None,
               width: int = WIDTH) -> str:
    """One progress line of ``watch``, within ``width`` columns whatever the counts: the bar
    gives way first (down to 10 columns), then the failure kinds and what it waits for are cut."""
    failed = f"{c['failed']:,} failed" + (f" ({failure_words(c)})" if c.get("failures") else "")
    saved = f" ({c['checkpointed']:,} checkpointed)" if c.get("checkpointed") else ""
    text = f"{ok:,}/{c['tasks']:,} ok, {failed}, {c['running']:,} running{saved}{eta}"
    if waiting:
        text += f"; waiting: {waiting}"
    bar = max(10, min(40, width - len(text) - 3))
    return fit(f"{_bar(ok, c['running'], c['failed'], c['tasks'], bar)} {text}", width)


def watch_cmd(args: argparse.Namespace) -> int:
    if is_run(args.job):
        return watch_run(args)
    start = time.monotonic()
    first_done = None
    tty = sys.stdout.isatty()
    last_answer = time.monotonic()
    while True:
        try:
            st = call(args, "jobs.status", {"job": args.job}, timeout=60)
            last_answer = time.monotonic()
        except CliError as err:
            if "not running" in str(err) or "no job" in str(err) or \
                    time.monotonic() - last_answer > PATIENCE_S:
                raise
            print(("\r" if tty else "") + fit(f"(no answer yet: {err}; still watching)"),
                  end="" if tty else "\n", flush=True)
            time.sleep(args.interval)
            continue
        c = st["counts"]
        ok = c.get("ok", c["accepted"])
        finished = ok + c["failed"] + c["cancelled"]
        elapsed = time.monotonic() - start
        if finished and first_done is None:
            first_done = (elapsed, finished)
        eta = ""
        if first_done and finished < c["tasks"] and elapsed > first_done[0]:
            rate = (finished - first_done[1]) / (elapsed - first_done[0])
            if rate > 0:
                eta = f" ETA {(c['tasks'] - finished) / rate:5.0f} s"
        failed = f"{c['failed']} failed" + (f" ({failure_words(c)})" if c.get("failures") else "")
        line = watch_line(ok, c, eta, st.get("waiting") if not c["running"] else None)
        print(("\r" + line + " " * 4) if tty else line, end="" if tty else "\n", flush=True)
        if st["state"] != "open":
            print(("\n" if tty else "") + wrap(f"job {st['state']}: {ok} ok, {failed}, "
                                                 f"{c['cancelled']} cancelled in {elapsed:.1f} s", 4))
            if st.get("parts"):
                print(wrap(spread_words(st["parts"]), 4))
            if agreement_words(st):
                print(wrap(agreement_words(st), 4))
            if c["failed"]:
                print(wrap(f"see why with `novacron logs {args.job}` (each failed task's stderr) "
                           f"and `novacron status {args.job} --tasks`", 4))
            return 0 if c["failed"] == 0 and c["cancelled"] == 0 else 1
        time.sleep(args.interval)


def result_cmd(args: argparse.Namespace) -> int:
    if is_run(args.job):
        return result_run(args)
    res = call(args, "jobs.result", {"job": args.job, "out": str(args.out.resolve())}, timeout=300)
    if args.json:
        print_json(res)
        return 0
    failed = res.get("failed", {})
    ok = res.get("ok", res["written"] - len(failed))
    print(f"wrote {ok} of {res['tasks']} task outputs and their certificates to {res['dir']}")
    if failed:
        kinds: dict[str, int] = {}
        for f in failed.values():
            kinds[f["status"]] = kinds.get(f["status"], 0) + 1
        first = min(failed, key=int)
        words = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
        print(f"{len(failed)} tasks failed ({words}): e.g. task {first}: {failed[first]['detail']}; "
              f"`novacron logs {args.job} {first}` shows its stderr")
    if res["missing"]:
        print(f"{len(res['missing'])} tasks have no certified result yet (e.g. task "
              f"{res['missing'][0]}); run `novacron watch {args.job}` and try again")
    if res["unfetched"]:
        print(f"{len(res['unfetched'])} certified outputs could not be fetched from their workers yet")
    return 0 if not res["missing"] and not res["unfetched"] and not failed else 1


def cancel_cmd(args: argparse.Namespace) -> int:
    if is_run(args.job):
        return cancel_run(args)
    res = call(args, "jobs.cancel", {"job": args.job}, timeout=60)
    print(f"job {res['job'][:12]} is {res['state']}")
    for p in res.get("parts") or []:
        print(f"  part {p['part'] + 1} ({Part(p['part'], p['first'], p['tasks'], p['shard']).words()}): "
              f"{p['state']}")
    return 1 if res["state"] == "partly cancelled" else 0


def explain_cmd(args: argparse.Namespace) -> int:
    _job_not_run(args.job, "explain")
    res = call(args, "jobs.explain", {"job": args.job, "task": args.task}, timeout=60)
    if args.json:
        print_json(res)
        return 0
    agreed = f", {res['agreed']} agreed" if res.get("agreed") else ""
    print(f"task {res['task']} of job {res['job'][:12]}: {res['state']} (quorum {res['quorum']}{agreed})")
    if res.get("part"):
        p = res["part"]
        print(f"  in part {p['part'] + 1} of {p['parts']}: job {p['job'][:12]} on shard "
              f"{p['shard']}, its task {p['task']}")
    for i, r in enumerate(res["replicas"]):
        result = r["result"]
        print(wrap(f"  replica {i}: {short_node_id(r['worker'])}  {r['outcome']:<9} "
                   + (_result_words(result) if result else "")
                   + (f"  ran {r['runtime_ms'] / 1000:.1f} s" if r.get("runtime_ms") is not None else "")
                   + (f"  ({r['detail']})" if r["detail"] else ""), indent=14))
        if timeline := _timeline(r, res.get("submitted_ms")):
            print(f"              {timeline}")
    ex = res.get("explanation")
    if isinstance(ex, dict) and "chosen" in ex:
        print(wrap_lines(render_explanation(ex), indent=8))
    elif ex:
        print(json.dumps(ex, indent=1))
    return 0


def _timeline(replica: dict[str, Any], submitted_ms: int | None) -> str:
    """When a replica was placed, started and reported, in seconds after the job's submission
    (ledger time): where a task's wait went (queued, running, or the committee's)."""
    if not submitted_ms:
        return ""
    steps = [f"{word} +{(replica[key] - submitted_ms) / 1000:.1f} s"
             for word, key in (("placed", "placed_ms"), ("started", "started_ms"),
                               ("reported", "reported_ms")) if replica.get(key)]
    return ", ".join(steps)


def render_explanation(ex: dict[str, Any]) -> str:
    """The placement's reasons, one peer per line (``daemon.sched.Explanation.to_dict`` form)."""
    basis = f" ({ex['duration_basis']})" if ex.get("duration_basis") else ""
    runtime = f" on {ex['runtime']}" if ex.get("runtime") else ""
    lines = [f"placement of the last replica slots: {ex['replicas']} wanted, task of "
             f"~{ex['duration_s']:.0f} s{basis}{runtime}"
             + (f"; short: {ex['shortfall']}" if ex.get("shortfall") else "")]
    for title, group in (("chosen", ex.get("chosen", [])), ("best rejected", ex.get("rejected", []))):
        if group:
            lines.append(f"{title}:")
        for v in group:
            f = v["factors"]
            up = f"up {f['uptime_h']:.1f} h" if f.get("uptime_h") is not None else "down"
            lines.append(f"  #{v['rank']:<3} {short_node_id(v['node_id'])}  P(finish) {f['p_finish']:.3f}  "
                         f"reputation {f['reputation']:.2f}  load {f['load']:.2f}  "
                         f"{f['attestation']}  link {f['link_s']:.2f}s  {up}  [{short_node_id(f['domain'])}]"
                         f"  -> {v['reason']}")
    if ex.get("rejected_counts"):
        lines.append("rejected in all: " + ", ".join(f"{k} {n}" for k, n in ex["rejected_counts"].items()))
    return "\n".join(lines)


def verify_cmd(args: argparse.Namespace) -> int:
    from daemon.genesis import GenesisError, load_genesis
    from daemon.ledger.certificate import CertificateError, ResultCertificate, verify_certificate
    from daemon.jobs.results import load_chain
    from daemon.jobs.spec import MAX_OUTPUT, MAX_TASKS
    from daemon.storage.userfile import UserFileError, read_capped, read_capped_text

    MAX_CERTIFICATES_BYTES = MAX_TASKS * 16 * 1024  # one certificate is ~1-4 KiB of JSON

    cert_file = args.dir / "certificates.json"
    try:
        docs = json.loads(read_capped_text(cert_file, MAX_CERTIFICATES_BYTES))
    except UserFileError as err:
        if err.missing:
            raise CliError(f"{cert_file} does not exist; write results with `novacron result JOB "
                           "-o DIR`") from None
        raise CliError(f"{cert_file} {err}") from None
    except ValueError as err:
        raise CliError(f"{cert_file} is not valid JSON: {err}") from None
    try:
        certs = [ResultCertificate.from_json(d) for d in docs]
    except CertificateError as err:
        raise CliError(f"{cert_file}: {err}") from None
    genesis = None
    if args.genesis is not None:
        network = certs[0].network if certs else ""
        try:
            genesis = load_genesis(args.genesis, network)
        except GenesisError as err:
            raise CliError(str(err)) from None
    if args.min_agree is not None and not 1 <= args.min_agree <= 16:
        raise CliError(f"--min-agree must be from 1 to 16, got {args.min_agree}")
    try:
        chain = load_chain(args.dir, genesis)  # followed once for all the certificates
    except (UserFileError, CertificateError) as err:
        raise CliError(str(err)) from None
    split = _split_of(args.dir)
    if split is not None:
        parts = sorted(split[1].values(), key=lambda p: p.index)
        print(f"job {split[0].hex()[:12]}: split in {len(parts)} parts: "
              + ", ".join(p.words() for p in parts))
        print("  ok  the job's id is the hash of these parts (their job ids and task ranges)")
    tasks = [_task_of(cert, split) for cert in certs]
    width = len(str(max(split[3] - 1 if split else max(tasks, default=0), 0)))
    bad = 0
    for cert, task in zip(certs, tasks):
        where = _part_words(cert, split)
        out = args.dir / "tasks" / f"{max(task, 0):0{width}d}.out"
        try:
            data, problem = read_capped(out, MAX_OUTPUT), ""
        except UserFileError as err:
            data, problem = None, str(err)
        checks = verify_certificate(cert, genesis, data, args.min_agree, chain)
        if task < 0:
            checks.append(type(checks[0])(False, f"job: certificate is for job {cert.job.hex()[:12]} "
                                          f"task {cert.task}, not one of this job's parts' tasks"))
        elif data is None:
            checks.append(type(checks[0])(False, f"output file {out} {problem}"))
        ok = all(c.ok for c in checks)
        bad += not ok
        code = f" exit {cert.exit_code}" if cert.exit_code else ""
        agreed = f"agreed by {cert.agreed}" if cert.agreed is not None else "agreement not stated"
        print(f"task {task if task >= 0 else cert.task}: {'OK' if ok else 'FAILED'}  "
              f"(result: {TaskStatus(cert.status).name}{code}, {agreed}{where})")
        for c in checks:
            if not ok or args.genesis is None:
                print(f"  {'ok ' if c.ok else 'BAD'} {c.what}")
    print(f"{len(certs) - bad} of {len(certs)} results verified"
          + ("" if genesis else " (signatures and outputs; add --genesis to check the committee)"))
    return 0 if bad == 0 and certs else 1


def _split_of(out: Path) -> tuple[bytes, dict[bytes, Part], list[dict[str, Any]], int] | None:
    """A split job's id, its parts by part job id, their rows and the job's task count, from a
    result directory's ``job.json``; None for a job that was not split. The id must be the hash
    of the parts listed (``daemon.jobs.split.whole_id``), or the directory does not verify."""
    from daemon.jobs.split import whole_id
    from daemon.storage.userfile import UserFileError, read_capped_text

    try:
        info = json.loads(read_capped_text(out / "job.json", 1 << 26))
        parts = parts_of(info)
    except UserFileError:
        return None  # a directory from before job.json, or certificates alone: nothing to map
    except (ValueError, KeyError, TypeError) as err:
        raise CliError(f"{out / 'job.json'} is damaged: {err}") from None
    if parts is None:
        return None
    if whole_id(parts).hex() != info.get("job"):
        raise CliError(f"{out / 'job.json'}: job {str(info.get('job'))[:12]} is not the hash of the "
                       "parts it lists: the directory was altered")
    return bytes.fromhex(info["job"]), {p.job: p for p in parts}, info["parts"], int(info["tasks"])


def _task_of(cert: Any, split: tuple[bytes, dict[bytes, Part], Any, int] | None) -> int:
    """The job's own index of the task a certificate is for (-1: not one of the job's)."""
    if split is None:
        return int(cert.task)
    part = split[1].get(cert.job)
    return part.first + cert.task if part is not None and cert.task < part.count else -1


def _part_words(cert: Any, split: tuple[bytes, dict[bytes, Part], Any, int] | None) -> str:
    part = split[1].get(cert.job) if split else None
    return f", part {part.index + 1} task {cert.task}" if part is not None else ""


def logs_cmd(args: argparse.Namespace) -> int:
    """A task's stderr, as agreed by its replicas and checked against its certificate."""
    _job_not_run(args.job, "logs")
    import base64

    params: dict[str, Any] = {"job": args.job}
    if args.task is not None:
        params["task"] = args.task
    res = call(args, "jobs.logs", params, timeout=120)
    out = sys.stdout.buffer
    for entry in res["tasks"]:
        if args.task is None:
            code = f" exit {entry['exit_code']}" if entry.get("exit_code") else ""
            print(f"== task {entry['task']}: {entry['status']}{code}", flush=True)
        data = base64.b64decode(entry["stderr"]) if entry.get("stderr") is not None else b""
        if data:
            out.write(data if data.endswith(b"\n") else data + b"\n")
            out.flush()
        elif entry.get("note"):  # to stderr: stdout holds only the task's own bytes
            print(f"({entry['note']})", file=sys.stderr, flush=True)
    if res.get("more"):
        print(f"... and {res['more']} more failed tasks: `novacron logs {args.job} TASK` for each")
    if args.task is None and not res["tasks"]:
        print(f"no failed tasks in job {args.job} (`novacron logs {args.job} TASK` shows any task's stderr)")
    return 0

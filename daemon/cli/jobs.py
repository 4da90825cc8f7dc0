"""``novacron submit | jobs | status JOB | watch JOB | result JOB | cancel JOB | explain JOB TASK
| verify DIR``: a researcher's commands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from daemon.cli.common import add_client_args, call, print_json
from daemon.cli.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a job (a TOML spec, see examples/); prints its id")
    p.add_argument("spec", type=Path)
    add_client_args(p)
    p.set_defaults(func=submit_cmd)

    p = sub.add_parser("jobs", help="the jobs submitted from this node")
    add_client_args(p)
    p.set_defaults(func=jobs_cmd)

    p = sub.add_parser("status", help="this node (no JOB), or a job's progress")
    p.add_argument("job", nargs="?", help="job id (or a unique prefix of 6+ hex digits)")
    p.add_argument("--tasks", action="store_true", help="list every task")
    add_client_args(p)
    p.set_defaults(func=status_cmd)

    p = sub.add_parser("watch", help="a live progress bar until the job ends")
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
    p.set_defaults(func=verify_cmd)


def submit_cmd(args: argparse.Namespace) -> int:
    if not args.spec.exists():
        raise CliError(f"job spec {args.spec} does not exist")
    res = call(args, "jobs.submit", {"spec": str(args.spec.resolve())}, timeout=120)
    if args.json:
        print_json(res)
    else:
        print(res["job"])
        print(f"submitted {res['name']!r}: {res['tasks']} tasks on shard {res['shard']}; "
              f"follow it with `novacron watch {res['job'][:12]}`", file=sys.stderr)
    return 0


def jobs_cmd(args: argparse.Namespace) -> int:
    res = call(args, "jobs.list")
    if args.json:
        print_json(res)
        return 0
    if not res["jobs"]:
        print("no jobs submitted from this node yet (try `novacron submit examples/pi/job.toml`)")
        return 0
    print(f"{'job':<14} {'name':<24} {'tasks':>6} {'certified':>9}  submitted")
    for j in res["jobs"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j["submitted_ms"] / 1000))
        print(f"{j['job'][:12]:<14} {j['name'][:24]:<24} {j['tasks']:>6} {j['certified']:>9}  {when}")
    return 0


def _line(st: dict[str, Any]) -> str:
    c = st["counts"]
    return (f"{st['name']}: {st['state']}: {c['accepted']}/{c['tasks']} done, {c['running']} running, "
            f"{c['failed']} failed" + (f", {st['certified']} certified" if st.get("certified") is not None else ""))


def status_cmd(args: argparse.Namespace) -> int:
    if args.job is None:
        from daemon.cli.node import status_cmd as node_status

        return node_status(args)
    st = call(args, "jobs.status", {"job": args.job, "tasks": args.tasks}, timeout=60)
    if args.json:
        print_json(st)
        return 0
    print(f"job {st['job']}")
    print(_line(st))
    for t in st.get("tasks", []):
        r = t["result"]
        res = _result_words(r, size=True) if r else ""
        print(f"  task {t['task']:>5}  {t['state']:<9} {('running' if t['running'] else ''):<8} {res}")
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


def watch_cmd(args: argparse.Namespace) -> int:
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
            print(("\r" if tty else "") + f"(no answer yet: {err}; still watching)",
                  end="" if tty else "\n", flush=True)
            time.sleep(args.interval)
            continue
        c = st["counts"]
        finished = c["accepted"] + c["failed"] + c["cancelled"]
        elapsed = time.monotonic() - start
        if finished and first_done is None:
            first_done = (elapsed, finished)
        eta = ""
        if first_done and finished < c["tasks"] and elapsed > first_done[0]:
            rate = (finished - first_done[1]) / (elapsed - first_done[0])
            if rate > 0:
                eta = f" ETA {(c['tasks'] - finished) / rate:5.0f} s"
        line = (f"{_bar(c['accepted'], c['running'], c['failed'], c['tasks'])} "
                f"{c['accepted']}/{c['tasks']} done, {c['running']} running, {c['failed']} failed{eta}")
        print(("\r" + line + " " * 4) if tty else line, end="" if tty else "\n", flush=True)
        if st["state"] != "open":
            print(("\n" if tty else "") + f"job {st['state']}: {c['accepted']} accepted, "
                  f"{c['failed']} failed, {c['cancelled']} cancelled in {elapsed:.1f} s")
            return 0 if c["failed"] == 0 and c["cancelled"] == 0 else 1
        time.sleep(args.interval)


def result_cmd(args: argparse.Namespace) -> int:
    res = call(args, "jobs.result", {"job": args.job, "out": str(args.out.resolve())}, timeout=300)
    if args.json:
        print_json(res)
        return 0
    print(f"wrote {res['written']} of {res['tasks']} task outputs and their certificates to {res['dir']}")
    if res["missing"]:
        print(f"{len(res['missing'])} tasks have no certified result yet (e.g. task "
              f"{res['missing'][0]}); run `novacron watch {args.job}` and try again")
    if res["unfetched"]:
        print(f"{len(res['unfetched'])} certified outputs could not be fetched from their workers yet")
    return 0 if not res["missing"] and not res["unfetched"] else 1


def cancel_cmd(args: argparse.Namespace) -> int:
    res = call(args, "jobs.cancel", {"job": args.job}, timeout=60)
    print(f"job {res['job'][:12]} is {res['state']}")
    return 0


def explain_cmd(args: argparse.Namespace) -> int:
    res = call(args, "jobs.explain", {"job": args.job, "task": args.task}, timeout=60)
    if args.json:
        print_json(res)
        return 0
    print(f"task {res['task']} of job {res['job'][:12]}: {res['state']} (quorum {res['quorum']})")
    for i, r in enumerate(res["replicas"]):
        result = r["result"]
        print(f"  replica {i}: {r['worker'][-12:]}  {r['outcome']:<9} "
              + (_result_words(result) if result else "")
              + (f"  ran {r['runtime_ms'] / 1000:.1f} s" if r.get("runtime_ms") is not None else "")
              + (f"  ({r['detail']})" if r["detail"] else ""))
    ex = res.get("explanation")
    if isinstance(ex, dict) and "chosen" in ex:
        print(render_explanation(ex))
    elif ex:
        print(json.dumps(ex, indent=1))
    return 0


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
            lines.append(f"  #{v['rank']:<3} {v['node_id'][-12:]}  P(finish) {f['p_finish']:.3f}  "
                         f"reputation {f['reputation']:.2f}  load {f['load']:.2f}  "
                         f"{f['attestation']}  link {f['link_s']:.2f}s  {up}  [{f['domain'][-12:]}]"
                         f"  -> {v['reason']}")
    if ex.get("rejected_counts"):
        lines.append("rejected in all: " + ", ".join(f"{k} {n}" for k, n in ex["rejected_counts"].items()))
    return "\n".join(lines)


def verify_cmd(args: argparse.Namespace) -> int:
    from daemon.genesis import GenesisError, load_genesis
    from daemon.ledger.certificate import CertificateError, ResultCertificate, verify_certificate

    cert_file = args.dir / "certificates.json"
    try:
        docs = json.loads(cert_file.read_text())
    except FileNotFoundError:
        raise CliError(f"{cert_file} does not exist; write results with `novacron result JOB -o DIR`") from None
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
    width = len(str(max((c.task for c in certs), default=0)))
    bad = 0
    for cert in certs:
        out = args.dir / "tasks" / f"{cert.task:0{width}d}.out"
        data = out.read_bytes() if out.exists() else None
        checks = verify_certificate(cert, genesis, data)
        if data is None:
            checks.append(type(checks[0])(False, f"output file {out} is missing"))
        ok = all(c.ok for c in checks)
        bad += not ok
        print(f"task {cert.task}: {'OK' if ok else 'FAILED'}")
        for c in checks:
            if not ok or args.genesis is None:
                print(f"  {'ok ' if c.ok else 'BAD'} {c.what}")
    print(f"{len(certs) - bad} of {len(certs)} results verified"
          + ("" if genesis else " (signatures and outputs; add --genesis to check the committee)"))
    return 0 if bad == 0 and certs else 1

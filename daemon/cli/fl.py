"""``novacron fl run | submit | check``, and FL runs (``fl-...``) in ``jobs | status | watch |
cancel | result``: federated training driven by the local node.

``fl submit JOB.toml`` hands the job to the node and prints the run's id; the node runs every
round (a job of replicated, certified training tasks), aggregates and evaluates. ``watch RUN``
prints one line per round as it finishes (clients, losses, accuracy, update bytes, levels; with
the adaptive codec, one line per client: its level and why) and the current round's progress;
``result RUN -o OUT`` writes ``OUT/model.npz`` and ``OUT/history.json``. ``fl run JOB -o OUT``
is submit + watch + result; Ctrl-C leaves the run going on the node (``--resume`` re-attaches).
``fl check JOB.toml`` checks the job file offline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from daemon.cli.common import add_client_args, call, fit, print_json, socket_path
from daemon.cli.errors import CliError

PREFIX = "fl-"


def is_run(ident: str | None) -> bool:
    return bool(ident) and str(ident).lower().startswith(PREFIX)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fl", help="federated training: the node runs every round as a job of"
                                  " certified tasks")
    fsub = p.add_subparsers(dest="fl_command", metavar="SUBCOMMAND")
    fsub.required = True
    q = fsub.add_parser("run", help="submit, watch every round, write OUT/ (Ctrl-C leaves the"
                                    " run going)")
    q.add_argument("job", type=Path, help="the FL job file (see docs/fl.md)")
    q.add_argument("-o", "--out", type=Path, required=True,
                   help="directory for model.npz and history.json")
    q.add_argument("--timeout", type=float, default=None, help="stop watching after this"
                   " many seconds (the run goes on)")
    q.add_argument("--resume", action="store_true",
                   help="re-attach to the run OUT belongs to (after Ctrl-C or a lost terminal)")
    q.add_argument("--genesis", type=Path, default=None,
                   help="the network's genesis: also check each update's committee here")
    add_client_args(q, json_flag=False)
    q.set_defaults(func=run_cmd)
    s = fsub.add_parser("submit", help="hand the FL job to the node; prints the run's id")
    s.add_argument("job", type=Path)
    add_client_args(s)
    s.set_defaults(func=submit_cmd)
    c = fsub.add_parser("check", help="check an FL job file offline")
    c.add_argument("job", type=Path)
    c.set_defaults(func=check_cmd)


def check_cmd(args: argparse.Namespace) -> int:
    from daemon.fl import FLError
    from daemon.flrun.stage import load_spec

    try:
        spec = load_spec(args.job.resolve())
    except FLError as err:
        raise CliError(str(err)) from None
    how = "the level chosen per client from its predicted link" if spec.adaptive else spec.codec
    print(f"{args.job}: ok ({spec.rounds} rounds, {spec.clients_per_round} clients per round,"
          f" {spec.aggregation.value}, updates as {how})")
    return 0


def submit_cmd(args: argparse.Namespace) -> int:
    if not args.job.is_file():
        raise CliError(f"FL job file {args.job} does not exist")
    res = call(args, "fl.submit", {"spec": str(args.job.resolve())}, timeout=120)
    if args.json:
        print_json(res)
        return 0
    print(res["run"])
    print(f"submitted {res['name']!r}: {res['rounds']} rounds of {res['clients_per_round']} of"
          f" {res['shards']} shards; follow it with `novacron watch {res['run'][:15]}`",
          file=sys.stderr)
    return 0


def round_line(row: dict[str, Any]) -> str:
    extra = f", ε {row['epsilon']:.3g}" if "epsilon" in row else ""
    levels = ", ".join(f"{n} x{k}" for n, k in row.get("levels", {}).items())
    return (f"round {row['round']}: {row['updates']}/{row['clients']} updates certified,"
            f" train loss {row['train_loss']:.4f}, test loss {row['test_loss']:.4f},"
            f" accuracy {row['accuracy']:.4f}, {row['update_bytes']:,} B of updates"
            f" ({levels or row['codec']}){extra}"
            + (f" in {row['seconds']:.1f} s" if "seconds" in row else "")
            + f" (job {row['job'][:12]})")


def show_round(row: dict[str, Any], rounds: int | None = None) -> None:
    line = round_line(row)
    if rounds:
        line = line.replace(f"round {row['round']}:", f"round {row['round']}/{rounds}:", 1)
    print(line)
    for task in row["tasks"]:
        if task["status"] == "OK" and "link" in task:
            print(f"  {task['shard']}: {task['codec']}, {task['bytes']:,} B, {task['why']}")
        elif task["status"] != "OK":
            print(f"  {task['shard']}: lost ({task['status']}"
                  f"{': ' + task['detail'] if task.get('detail') else ''})")
    sys.stdout.flush()


class Progress:
    """The current round's progress on stderr: rewritten in place on a terminal, a new line
    only when it changes otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = ""

    def __call__(self, st: dict[str, Any]) -> None:
        p = st.get("progress") or {}
        what = st.get("activity") or "starting"
        counts = (f", {p['certified']}/{p['tasks']} updates certified, {p['lost']} lost"
                  if p.get("tasks") else "")
        line = fit(f"round {st['done'] + 1}/{st['rounds']}: {what}{counts}")
        if line == self.last:
            return
        self.last = line
        print(("\r" + line + " " * 4) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.tty and self.last:
            print("\r" + " " * (len(self.last) + 4) + "\r", end="", file=sys.stderr, flush=True)
        self.last = ""


def run_cmd(args: argparse.Namespace) -> int:
    from daemon.fl import FLError
    from novacron import Client, NovaCronError
    from novacron.fl import run_fl

    progress = Progress()
    run: dict[str, str] = {}

    def on_round(row: dict[str, Any]) -> None:
        progress.clear()
        _check_committees(args.genesis, row)
        show_round(row)

    def on_submit(info: dict[str, Any]) -> None:
        run["id"] = info["run"]
        print(f"run {info['run']} submitted: {info['rounds']} rounds of"
              f" {info['clients_per_round']} clients; Ctrl-C stops watching, not the run",
              file=sys.stderr, flush=True)

    client = Client(socket=socket_path(args))
    try:
        history = run_fl(client, args.job, args.out, on_round=on_round, timeout=args.timeout,
                         resume=args.resume, on_submit=on_submit, on_progress=progress)
    except KeyboardInterrupt:
        progress.clear()
        ident = run.get("id") or "the run"
        raise CliError(f"stopped watching; {ident[:15]} goes on on the node: re-attach with"
                       f" `novacron fl run {args.job} -o {args.out} --resume` (or `novacron"
                       f" watch {ident[:15]}`), stop it with `novacron cancel {ident[:15]}`"
                       ) from None
    except (FLError, NovaCronError, TimeoutError) as err:
        progress.clear()
        raise CliError(str(err)) from None
    finally:
        client.close()
    print(f"{len(history)} rounds; model and history in {args.out}", file=sys.stderr)
    return 0


def _check_committees(genesis: Path | None, row: dict[str, Any]) -> None:
    """With ``--genesis``: every certified update's certificate checked here too."""
    if genesis is None:
        return
    from daemon.genesis import load_genesis
    from daemon.ledger.certificate import ResultCertificate, verify_certificate

    for task in row["tasks"]:
        if task["status"] != "OK" or not task.get("certificate"):
            continue
        cert = ResultCertificate.from_json(task["certificate"])
        checks = verify_certificate(cert, load_genesis(genesis, cert.network), None)
        bad = [c.what for c in checks if not c.ok]
        if bad:
            raise CliError(f"round {row['round']} {task['shard']}: certificate failed"
                           f" verification: {bad[0]}")
        task["checks"] = sorted(set(task.get("checks", [])) | {c.what for c in checks})


# -- FL runs in the generic commands -------------------------------------------------------------

def watch_run(args: argparse.Namespace) -> int:
    """``novacron watch fl-...``: every finished round, then one line per round as it ends."""
    progress = Progress()
    since = 0
    while True:
        st = call(args, "fl.status", {"run": args.job, "since": since, "wait_s": 20.0},
                  timeout=60)
        for row in st["history"]:
            progress.clear()
            show_round(row, st["rounds"])
            since = max(since, row["round"])
        if st["state"] != "running":
            progress.clear()
            print(_ended(st))
            return 0 if st["state"] == "done" else 1
        progress(st)


def _ended(st: dict[str, Any]) -> str:
    words = {"done": "done", "failed": "failed", "cancelled": "cancelled"}[st["state"]]
    why = f": {st['error']}" if st.get("error") and st["state"] != "done" else ""
    return (f"run {st['run'][:15]} {words} after {st['done']} of {st['rounds']} rounds{why};"
            f" `novacron result {st['run'][:15]} -o DIR` writes model.npz and history.json")


def status_run(args: argparse.Namespace) -> int:
    st = call(args, "fl.status", {"run": args.job, "tasks": bool(getattr(args, "tasks", False))},
              timeout=60)
    if getattr(args, "json", False):
        print_json(st)
        return 0
    print(f"FL run {st['run']} ({st['name']}, {st['source']})")
    last = st["history"][-1] if st["history"] else None
    acc = f", accuracy {last['accuracy']:.4f} after round {last['round']}" if last else ""
    print(f"{st['state']}: {st['done']}/{st['rounds']} rounds{acc}")
    if st["state"] == "running":
        p = st.get("progress") or {}
        counts = f" ({p['certified']}/{p['tasks']} certified, {p['lost']} lost)" if p else ""
        job = f"; its job {st['round_job'][:12]}" if st.get("round_job") else ""
        print(f"round {st['done'] + 1}: {st.get('activity') or 'starting'}{counts}{job}")
    elif st.get("error"):
        print(f"why: {st['error']}")
    for row in st["history"]:
        print("  " + round_line(row))
    return 0 if st["state"] in ("running", "done") else 1


def cancel_run(args: argparse.Namespace) -> int:
    res = call(args, "fl.cancel", {"run": args.job}, timeout=60)
    if res["was"] != "running":
        print(f"run {res['run'][:15]} had already ended ({res['was']}); nothing to cancel")
        return 0
    print(f"run {res['run'][:15]} is cancelled after {res['done']} rounds (its round's job"
          " too)")
    return 0


def result_run(args: argparse.Namespace) -> int:
    res = call(args, "fl.result", {"run": args.job, "out": str(args.out.resolve())}, timeout=120)
    if getattr(args, "json", False):
        print_json(res)
        return 0
    more = "" if res["state"] == "done" else f" (the run is {res['state']})"
    print(f"wrote model.npz and history.json ({res['rounds']} of {res['of']} rounds) to"
          f" {res['dir']}{more}")
    return 0


def runs_lines(args: argparse.Namespace) -> list[str]:
    """``novacron jobs``' FL section: one line per run."""
    res = call(args, "fl.list")
    lines = []
    for r in res["runs"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["submitted_ms"] / 1000))
        lines.append(fit(f"{r['run'][:15]:<15} {r['name'][:22]:<22} {r['state']:<9}"
                         f" {r['done']:>4}/{r['rounds']:<4} {when}"))
    return lines

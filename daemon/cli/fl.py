"""``novacron fl run JOB.toml -o OUT``: federated training through the local node.

Each round is a job of replicated, certified training tasks (see ``novacron.fl``); this
command aggregates them, prints one line per round (clients, losses, accuracy, update bytes and
levels) and, with the adaptive codec, one line per client (its level and why)
and keeps ``OUT/model.npz`` and ``OUT/history.json`` current after every round.
``novacron fl check JOB.toml`` checks the job file offline.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from daemon.cli.common import add_client_args, socket_path
from daemon.cli.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fl", help="federated training: every round a job of certified tasks")
    fsub = p.add_subparsers(dest="fl_command", metavar="SUBCOMMAND")
    fsub.required = True
    q = fsub.add_parser("run", help="train: submit each round, aggregate, write OUT/")
    q.add_argument("job", type=Path, help="the FL job file (see docs/fl.md)")
    q.add_argument("-o", "--out", type=Path, required=True,
                   help="directory for model.npz and history.json")
    q.add_argument("--timeout", type=float, default=None, help="give up on a round after this"
                   " many seconds")
    q.add_argument("--resume", action="store_true",
                   help="go on from the rounds already in OUT (after an interruption)")
    q.add_argument("--genesis", type=Path, default=None,
                   help="the network's genesis: also check each update's committee")
    add_client_args(q, json_flag=False)
    q.set_defaults(func=run_cmd)
    c = fsub.add_parser("check", help="check an FL job file offline")
    c.add_argument("job", type=Path)
    c.set_defaults(func=check_cmd)


def check_cmd(args: argparse.Namespace) -> int:
    from daemon.fl import FLError
    from novacron.fl import load_spec

    try:
        spec = load_spec(args.job)
    except FLError as err:
        raise CliError(str(err)) from None
    how = "the level chosen per client from its predicted link" if spec.adaptive else spec.codec
    print(f"{args.job}: ok ({spec.rounds} rounds, {spec.clients_per_round} clients per round,"
          f" {spec.aggregation.value}, updates as {how})")
    return 0


def run_cmd(args: argparse.Namespace) -> int:
    from daemon.fl import FLError
    from novacron import Client, NovaCronError
    from novacron.fl import run_fl

    def show(row: dict[str, Any]) -> None:
        extra = f", ε {row['epsilon']:.3g}" if "epsilon" in row else ""
        levels = ", ".join(f"{n} x{k}" for n, k in row.get("levels", {}).items())
        print(f"round {row['round']}: {row['updates']}/{row['clients']} updates certified,"
              f" train loss {row['train_loss']:.4f}, test loss {row['test_loss']:.4f},"
              f" accuracy {row['accuracy']:.4f}, {row['update_bytes']:,} B of updates"
              f" ({levels or row['codec']}){extra} (job {row['job'][:12]})")
        for task in row["tasks"]:
            if task["status"] == "OK" and "link" in task:
                print(f"  {task['shard']}: {task['codec']}, {task['bytes']:,} B, {task['why']}")
        sys.stdout.flush()

    client = Client(socket=socket_path(args), genesis=args.genesis)
    try:
        history = run_fl(client, args.job, args.out, on_round=show, timeout=args.timeout,
                         resume=args.resume)
    except (FLError, NovaCronError, TimeoutError) as err:
        raise CliError(str(err)) from None
    finally:
        client.close()
    print(f"{len(history)} rounds; model and history in {args.out}", file=sys.stderr)
    return 0

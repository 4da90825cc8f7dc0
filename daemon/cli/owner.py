"""The owner's commands for a running daemon: ``stop``, ``suspend``, ``resume``, ``settings``
and ``tasks`` (see ``daemon.owner`` and docs/volunteer.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from daemon.cli.common import add_client_args, answer, call, print_json
from daemon.cli.errors import CliError

STOP_WAIT_S = 30.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stop", help="stop the running daemon cleanly (as SIGTERM does)")
    add_client_args(p)
    p.add_argument("--no-wait", action="store_true", help="return once the daemon has the request")
    p.set_defaults(func=stop_cmd)

    p = sub.add_parser("suspend", help="take no new tasks (running ones finish); kept across "
                                       "restarts until `novacron resume`")
    add_client_args(p)
    p.set_defaults(func=suspend_cmd)

    p = sub.add_parser("resume", help="take tasks again after `novacron suspend`")
    add_client_args(p)
    p.set_defaults(func=resume_cmd)

    p = sub.add_parser("settings", help="show or change the volunteer's settings while the "
                                        "daemon runs (applied at once, kept across restarts)")
    add_client_args(p)
    p.add_argument("--cpu-share", type=float, default=None, metavar="FRACTION",
                   help="the share of this machine's CPU to give, e.g. 0.25")
    p.add_argument("--memory-mb", type=int, default=None, metavar="MB",
                   help="the most memory one task may use")
    p.add_argument("--hours", default=None, metavar="HH:MM-HH:MM",
                   help="local hours to run tasks in, e.g. 22:00-07:00 (\"\" for any time)")
    p.add_argument("--idle-only", default=None, choices=["yes", "no"],
                   help="run tasks only while the machine is otherwise idle")
    p.add_argument("--reset", action="store_true",
                   help="forget the changes made here and use the config file's settings")
    p.set_defaults(func=settings_cmd)

    p = sub.add_parser("ui", help="print a one-time login link to this node's web page "
                                  "(127.0.0.1 only)")
    add_client_args(p)
    p.add_argument("--open", action="store_true", help="also open it in the browser")
    p.set_defaults(func=ui_cmd)

    p = sub.add_parser("tasks", help="the tasks this machine ran lately (newest first)")
    add_client_args(p)
    p.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    p.set_defaults(func=tasks_cmd)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie has exited: only its parent has not reaped it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_cmd(args: argparse.Namespace) -> int:
    res = call(args, "stop")
    pid = res["pid"]
    if not args.no_wait:
        deadline = time.monotonic() + STOP_WAIT_S
        while _alive(pid):  # the user waits for the daemon to be gone, as with systemctl stop
            if time.monotonic() > deadline:
                raise CliError(f"the daemon (pid {pid}) is still stopping after "
                               f"{STOP_WAIT_S:.0f} s; see its node.log")
            time.sleep(0.05)
    state = "stopping" if args.no_wait else "stopped"
    return answer(args, {**res, "state": state},
                  lambda r: f"{state} daemon {r['node_id']} (pid {pid})")


def suspend_cmd(args: argparse.Namespace) -> int:
    return answer(args, call(args, "suspend"), _suspended_line)


def _suspended_line(res: dict[str, Any]) -> str:
    if res["state"] == "already suspended":
        return "already suspended (`novacron resume` to take tasks again)"
    running = res["running"]
    tail = f"; {running} running task(s) will finish" if running else ""
    return f"suspended: taking no new tasks{tail}. `novacron resume` to take them again"


def resume_cmd(args: argparse.Namespace) -> int:
    return answer(args, call(args, "resume"), lambda r: (
        f"{'resumed' if r['state'] == 'resumed' else 'was not suspended'}: {r['work']}"))


def settings_cmd(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.cpu_share is not None:
        changes["cpu_share"] = args.cpu_share
    if args.memory_mb is not None:
        changes["max_memory_mb"] = args.memory_mb
    if args.hours is not None:
        changes["hours"] = args.hours
    if args.idle_only is not None:
        changes["idle_only"] = args.idle_only == "yes"
    params: dict[str, Any] = {}
    if changes:
        params["set"] = changes
    if args.reset:
        params["reset"] = True
    res = call(args, "settings", params)
    if args.json:
        print_json(res)
        return 0
    s, src = res["settings"], res["sources"]
    shown = {"cpu_share": f"{s['cpu_share']:g} ({res['workers']} worker(s), each running "
                          f"{res['duty']:.0%} of the time)",
             "max_memory_mb": f"{s['max_memory_mb']} MB per task",
             "hours": s["hours"] or "any time", "idle_only": "yes" if s["idle_only"] else "no"}
    for name, text in shown.items():
        print(f"{name:<14} {text:<50} [{src[name]}]")
    print(f"{'suspended':<14} {'yes' if res['suspended'] else 'no'}")
    return 0


def ui_cmd(args: argparse.Namespace) -> int:
    res = call(args, "ui.login")
    if args.json:
        print_json(res)
        return 0
    print(res["url"])
    print(f"(good once, for {res['expires_in_s'] // 60} minutes; only from this machine)",
          file=sys.stderr)
    if args.open:
        import webbrowser

        webbrowser.open(res["url"])
    return 0


def _when(t: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(t))


def tasks_cmd(args: argparse.Namespace) -> int:
    res = call(args, "tasks", {"limit": args.limit})
    if args.json:
        print_json(res)
        return 0
    t = res["totals"]
    print(f"{res['work']}; {t['tasks']} task(s) run in all, {t['ok']} OK, "
          f"{t['cpu_s'] / 3600:.3f} CPU-hours")
    for r in res.get("running", []):
        what = f"{r['job'][:12]}/{r['task']}.{r['replica']}" if r["job"] else "-"
        print(f"running {what:<22} for {r['elapsed_s']:.0f} of {r['allowance_s']:.0f} s allowed "
              f"({r['used_of_allowance']:.0%}), {r['cpu_s']:.1f} CPU s")
    if not res["tasks"]:
        print("no tasks run yet")
        return 0
    print(f"{'when':<15} {'job/task':<22} {'outcome':<10} {'wall s':>8} {'cpu s':>8}")
    for r in res["tasks"]:
        what = f"{r['job'][:12]}/{r['task']}.{r['replica']}" if r["job"] else "-"
        print(f"{_when(r['started']):<15} {what:<22} {r['outcome']:<10} "
              f"{r['wall_s']:>8.2f} {r['cpu_s']:>8.2f}")
    return 0

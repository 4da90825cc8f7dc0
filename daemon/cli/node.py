"""``novacron daemon`` (run a node), ``novacron peers`` and ``novacron links``; ``status_cmd``
serves ``novacron status`` without a job (see ``daemon.cli.jobs``)."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path
from typing import Any

from daemon.cli.common import add_client_args, answer, call, print_json, wrap
from daemon.cli.errors import CliError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("daemon", help="run a node (config from a TOML file and flags)")
    p.add_argument("--config", type=Path, default=None, help="TOML config file (see docs/config.md)")
    p.add_argument("--data-dir", type=Path, default=None, help="node data directory")
    p.add_argument("--network", default=None, help="network name (must match your peers')")
    p.add_argument("--listen", action="append", default=None, metavar="MULTIADDR",
                   help="listen address, e.g. /ip4/127.0.0.1/tcp/4001 (repeatable)")
    p.add_argument("--bootstrap", action="append", default=None, metavar="MULTIADDR",
                   help="peer to join through, ending in /p2p/<node id> (repeatable)")
    p.add_argument("--genesis", type=Path, default=None, help="genesis file of the network")
    p.add_argument("--log-level", default=None, choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run_daemon_cmd)

    p = sub.add_parser("peers", help="peers this node knows and is connected to")
    add_client_args(p)
    p.set_defaults(func=peers_cmd)

    p = sub.add_parser("links", help="predicted links from the volunteers to this node (or"
                                     " --to NODE), from the link summaries nodes publish")
    p.add_argument("--to", default=None, help="a node id (default: this node)")
    add_client_args(p)
    p.set_defaults(func=links_cmd)

    p = sub.add_parser("leave", help="leave the network for good: stop taking tasks, hand back "
                                     "the ones held, give up the membership (undo: join)")
    add_client_args(p)
    p.set_defaults(func=leave_cmd)

    p = sub.add_parser("join", help="come back after `novacron leave`")
    add_client_args(p)
    p.set_defaults(func=join_cmd)


def run_daemon_cmd(args: argparse.Namespace) -> int:
    from daemon.config import ConfigError, load_config
    from daemon.control.server import SocketInUse
    from daemon.genesis import GenesisError
    from daemon.p2p.errors import P2PError
    from daemon.runner import run_daemon
    from daemon.storage.db import StorageError
    from daemon.storage.keyfile import KeyFileError
    from daemon.duplicate import DuplicateIdentity
    from daemon.storage.claim import DataDirInUse
    from daemon.web.http import PortTaken

    overrides: dict[str, Any] = {
        "data_dir": str(args.data_dir.resolve()) if args.data_dir else None,
        "network": args.network,
        "p2p.listen": args.listen,
        "p2p.bootstrap": args.bootstrap,
        "genesis": str(args.genesis.resolve()) if args.genesis else None,
        "log.level": args.log_level,
    }
    try:
        config = load_config(args.config, overrides)
        run_daemon(config)
    except (ConfigError, KeyFileError, StorageError, SocketInUse, P2PError, GenesisError,
            DataDirInUse, DuplicateIdentity, PortTaken) as err:
        raise CliError(str(err)) from None
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            raise CliError(f"a listen port is taken ({err}); choose another with --listen") from None
        if err.errno in (errno.EACCES, errno.EPERM):
            raise CliError(f"permission denied: {err}") from None
        raise
    return 0


def _fmt_services(services: dict[str, Any]) -> list[str]:
    lines = []
    for name, st in services.items():
        health = st.get("health", "ok")
        summary = st.get("summary", "")
        # A long health reason or summary wraps under the summary column, within 100 columns.
        lines.append(wrap(f"  {name:<12} {health:<8} {summary}", indent=24))
    return lines


def status_cmd(args: argparse.Namespace) -> int:
    st = call(args, "status")
    if args.json:
        print_json(st)
        return 0
    print(f"node      {st['node_id']}")
    print(f"network   {st['network']}  (version {st['version']}, pid {st['pid']}, "
          f"up {st['uptime_s']:.0f} s)")
    print(wrap(f"health    {st['health']}", indent=10))
    reach = st.get("services", {}).get("p2p", {}).get("reachability", {}).get("line")
    if reach:
        print(wrap(f"reach     {reach}", indent=10))
    work = st.get("services", {}).get("owner", {}).get("work")
    if work:
        print(wrap(f"work      {work}", indent=10))
    for line in _fmt_services(st.get("services", {})):
        print(line)
    return 0


def peers_cmd(args: argparse.Namespace) -> int:
    result = call(args, "peers")
    if args.json:
        print_json(result)
        return 0
    peers = result.get("peers", [])
    if not peers:
        print("no peers yet")
        return 0
    for p in peers:
        state = p.get("role", "connected") if p.get("connected") else "known"
        caps = p.get("capabilities") or {}
        extra = f"  cores={caps.get('cores')} mem={caps.get('memory_mb')}MB" if caps else ""
        print(f"{p['node_id']}  {state:<9}{extra}")
    return 0


def links_cmd(args: argparse.Namespace) -> int:
    result = call(args, "links", {"to": args.to} if args.to else None)
    if args.json:
        print_json(result)
        return 0
    links = result.get("links", {})
    print(f"to {result['to']}: {len(links)} predicted link(s),"
          f" {len(result.get('volunteers', []))} live volunteer(s)")
    for node, p in sorted(links.items(), key=lambda kv: kv[1]["low"]):
        print(f"{node}  {p['bandwidth'] / 1e3:>10,.0f} kB/s (low {p['low'] / 1e3:,.0f})"
              f"  rtt {p['rtt_ms']} ms  {p['samples']} samples, {p['age_s']} s old,"
              f" measured by {'it' if p['source'] == node else 'the other end'}")
    return 0


def leave_cmd(args: argparse.Namespace) -> int:
    return answer(args, call(args, "leave"), _left_line)


def _left_line(res: dict[str, Any]) -> str:
    if res["state"] == "already left":
        return "this node has already left the network (`novacron join` to come back)"
    return (f"left: taking no more tasks, replicas handed back on {res['released_on_shards']} "
            f"shard(s); directory: {res['directory']}. Stop the daemon when you like.")


def join_cmd(args: argparse.Namespace) -> int:
    return answer(args, call(args, "join"), lambda r: (
        "this node has not left the network; nothing to do" if r["state"] == "already in"
        else "joining again: taking tasks now, a member from the next epoch"))

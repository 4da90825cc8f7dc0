"""``novacron testnet up|status|down|kill|pause|resume|restart|partition|heal``: a local network
in one command (on 127.0.0.1, or with ``--wan`` in network namespaces that look like the
internet)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from daemon.cli.common import fit, print_json
from daemon.cli.errors import CliError
from testnet.local import launcher
from testnet.local.layout import DEFAULT_DIR
from protocol.identity import short_node_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("testnet", help="run a local testnet of daemons on 127.0.0.1")
    tsub = p.add_subparsers(dest="testnet_command", metavar="ACTION")
    tsub.required = True

    def add(name: str, help: str, func, node: bool = False) -> argparse.ArgumentParser:
        q = tsub.add_parser(name, help=help)
        q.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                       help=f"testnet directory (default: {DEFAULT_DIR})")
        if node:
            q.add_argument("node", help="node name (node2) or index (2)")
        q.set_defaults(func=func)
        return q

    q = add("up", "create and start N daemons, wait until they are ready", up_cmd)
    q.add_argument("-n", type=int, default=5, help="number of nodes (default 5)")
    q.add_argument("--base-port", type=int, default=None, help="first TCP port (default: free ports)")
    q.add_argument("--seed", type=int, default=None, help="derive keys from this seed (reproducible ids)")
    q.add_argument("--wait", type=float, default=60.0, help="seconds to wait for readiness")
    q.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a genesis parameter, e.g. shards=2 or byzantine_percent=10 (repeatable)")
    q.add_argument("--seeds", type=int, default=1,
                   help="bootstrap every node to one of the first K nodes only (default 1); "
                        "the rest of the network is found by discovery")
    q.add_argument("--cheaters", type=int, default=0,
                   help="make the last K nodes dishonest workers that forge task outputs")
    q.add_argument("--wan", metavar="PROFILE", default=None,
                   help="run each node in a network namespace of its own, with the delay, loss "
                        "and lines of PROFILE: lan (1 Gbit/s), continent (20-80 ms round "
                        "trips, uplinks 5-100 Mbit/s) or planet (50-300 ms, 0.5%% loss, "
                        "uplinks 0.5-20 Mbit/s); each node draws its own; needs root")
    q.add_argument("--nat-fraction", type=float, default=0.0, metavar="F",
                   help="with --wan: put this fraction of the nodes (never a seed) behind NAT "
                        "routers, e.g. 0.33")
    q.add_argument("--uplink", action="append", default=[], metavar="NODE=RATE",
                   help="with --wan: set a node's uplink instead of drawing it from the "
                        "profile, e.g. node2=1mbit or 3=500kbit (repeatable)")
    q.add_argument("--downlink", action="append", default=[], metavar="NODE=RATE",
                   help="with --wan: set a node's downlink, e.g. node2=8mbit (repeatable)")
    add("add", "start one more node, not in the genesis: it joins through the directory", add_cmd)
    q = add("status", "show every node: process, peers, epoch, committees, health", status_cmd)
    q.add_argument("--json", action="store_true")
    add("down", "stop every node", down_cmd)
    add("kill", "SIGKILL a node (crash fault)", kill_cmd, node=True)
    add("pause", "SIGSTOP a node (it stops answering; its sockets stay open)", pause_cmd, node=True)
    add("resume", "SIGCONT a paused node", resume_cmd, node=True)
    add("restart", "start a node again with its data directory", restart_cmd, node=True)
    q = add("partition", "--wan testnets: cut the network into groups, e.g. `0,1 / 2,3,4` "
            "(one group alone is cut off from the rest)", partition_cmd)
    q.add_argument("groups", nargs="+", metavar="GROUPS",
                   help="nodes by name or index, comma-separated, groups split by /")
    add("heal", "--wan testnets: end a partition", heal_cmd)


def _guard(fn, *args, **kw):
    from testnet.wan.launcher import WanError

    try:
        return fn(*args, **kw)
    except (launcher.TestnetError, WanError) as err:
        raise CliError(str(err)) from None


def up_cmd(args: argparse.Namespace) -> int:
    from testnet.local.readiness import network_formed, network_ready

    params = {}
    for item in args.param:
        key, _, value = item.partition("=")
        if not value.lstrip("-").isdigit():
            raise CliError(f"--param {item!r}: expected KEY=INTEGER, e.g. shards=2")
        params[key] = int(value)
    state = _guard(launcher.up, args.dir, args.n, base_port=args.base_port, seed=args.seed,
                   cheaters=args.cheaters, params=params, seeds=args.seeds,
                   wait=args.wait, ready=network_formed if args.wan else network_ready,
                   log=lambda s: print(s, file=sys.stderr), wan=args.wan,
                   nat_fraction=args.nat_fraction, uplinks=args.uplink,
                   downlinks=args.downlink)
    print(f"testnet {state.network} is up with {len(state.nodes)} nodes in {state.dir}")
    _print_table(state)
    return 0


def _print_table(state) -> None:
    from testnet.local.readiness import summarize

    sts = launcher.statuses(state)
    wan = _wan(state)
    natted = {f"node{n.index}" for n in wan.plan.nodes if n.natted} if wan else set()
    # A --wan testnet's nodes all listen on port 4001, each on its own address: show that,
    # which ones sit behind NAT (their home network's address, reached via a router), and
    # each node's line (uplink/downlink).
    where = "address" if state.wan else "port"
    width = 18 if state.wan else 5
    line_head = f" {'line (up/down)':<17}" if wan else ""
    print(f"{'node':<7} {'node id':<13} {where:>{width}}{line_head} {'process':<8} "
          f"{'peers':>5}  health / summary")
    for i, node in enumerate(state.nodes):
        st = sts[node.name]
        role = " (cheater)" if node.role == "cheater" else ""
        addr = (f"{'NAT ' if node.name in natted else ''}{node.host}" if state.wan
                else str(node.port))
        line = wan.link(i) if wan else None
        shown = f" {line.describe() if line else '?':<17}" if wan else ""
        print(fit(f"{node.name:<7} {short_node_id(node.node_id):<13} {addr:>{width}}{shown} "
                  f"{st.get('process', '?'):<8} {summarize(st)}{role}"))


def _wan(state):
    if state.wan is None:
        return None
    from testnet.wan.launcher import Wan

    return Wan.load(Path(state.dir))


def partition_cmd(args: argparse.Namespace) -> int:
    from testnet.wan import launcher as wan_launcher

    state = _guard(launcher.load, args.dir)
    groups = _guard(wan_launcher.cut, Path(state.dir), args.groups, [n.name for n in state.nodes])
    print("partitioned: " + " / ".join(",".join(g) for g in groups))
    return 0


def heal_cmd(args: argparse.Namespace) -> int:
    from testnet.wan import launcher as wan_launcher

    state = _guard(launcher.load, args.dir)
    _guard(wan_launcher.heal, Path(state.dir))
    print("healed: every node can reach every other again")
    return 0


def add_cmd(args: argparse.Namespace) -> int:
    node = _guard(launcher.add, args.dir)
    print(f"started {node.name} ({node.node_id}); it joins at the next epoch")
    return 0


def status_cmd(args: argparse.Namespace) -> int:
    state = _guard(launcher.load, args.dir)
    if args.json:
        sts = launcher.statuses(state)
        wan = _wan(state)
        for i, node in enumerate(state.nodes):
            line = wan.link(i) if wan else None
            if line is not None:  # the node's access line as the launcher shaped it
                sts[node.name]["line"] = line.to_json()
        print_json(sts)
    else:
        _print_table(state)
    return 0


def down_cmd(args: argparse.Namespace) -> int:
    n = _guard(launcher.down, args.dir)
    print(f"stopped {n} node{'s' if n != 1 else ''}")
    return 0


def kill_cmd(args: argparse.Namespace) -> int:
    node = _guard(launcher.kill, args.dir, args.node)
    print(f"killed {node.name} (SIGKILL)")
    return 0


def pause_cmd(args: argparse.Namespace) -> int:
    node = _guard(launcher.pause, args.dir, args.node)
    print(f"paused {node.name} (SIGSTOP)")
    return 0


def resume_cmd(args: argparse.Namespace) -> int:
    node = _guard(launcher.resume, args.dir, args.node)
    print(f"resumed {node.name}")
    return 0


def restart_cmd(args: argparse.Namespace) -> int:
    node = _guard(launcher.restart, args.dir, args.node)
    print(f"restarted {node.name} (pid {node.pid})")
    return 0

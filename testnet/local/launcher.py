"""A local testnet in one command: N daemon processes on 127.0.0.1, bootstrapped to seed nodes.

As a volunteer would be, each node is given the address of one seed (``seeds``, default 1;
the seeds are given each other's) and finds the rest of the network by itself.

``up`` creates keys, the genesis, and a config per node (own data directory and port), starts
the daemons and waits until every one answers on its control socket and sees its peers.
``kill`` / ``pause`` / ``resume`` / ``restart`` inject faults (SIGKILL, SIGSTOP, SIGCONT, start
again with the same data directory). ``down`` stops them all.

Every failure is a ``TestnetError`` with one line saying what is wrong and what to do.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from daemon.control.client import ControlClient, ControlError
from daemon.storage.keyfile import save_identity
from protocol.identity import NodeIdentity
from testnet.interrupt import raise_on_sigterm
from testnet.local import processes
from testnet.local.layout import NodeRecord, TestnetState

MAX_NODES = 64


class TestnetError(Exception):
    """One line for the user."""


def _query(node: NodeRecord, method: str, params: dict[str, Any] | None = None,
           timeout: float = 5.0) -> Any:
    with ControlClient(node.socket, timeout=timeout) as c:
        return c.call(method, params)


def _node_config(network: str, node: NodeRecord, bootstrap: list[str], genesis: Path) -> str:
    lines = [
        f'network = "{network}"',
        f'data_dir = "{node.data_dir}"',
        f'genesis = "{genesis}"',
        "",
        "[p2p]",
        f'listen = ["/ip4/{node.host}/tcp/{node.port}"]',
        "bootstrap = [" + ", ".join(f'"{b}"' for b in bootstrap) + "]",
        "",
        "[volunteer]",
        "cpu_share = 0.25",
        # A testnet reaches nothing beyond 127.0.0.1: it uses the machine's interpreter cache
        # (filled by scripts/setup.sh) and never downloads it.
        "python_fetch = false",
        "",
        "[ui]",
        "port = 0  # many daemons on one machine: no web pages (each would want port 7681)",
        "",
        "[log]",
        'level = "info"',
        "",
    ]
    return "\n".join(lines)


GenesisWriter = Callable[[str, list[NodeIdentity], Path, dict[str, int]], None]


def default_genesis_writer(network: str, identities: list[NodeIdentity], path: Path,
                           params: dict[str, int]) -> None:
    from daemon.genesis import write_testnet_genesis

    write_testnet_genesis(network, identities, path, params)


def up(directory: Path, n: int, *, base_port: int | None = None, seed: int | None = None,
       cheaters: int = 0, params: dict[str, int] | None = None, seeds: int = 1,
       wait: float = 60.0, genesis_writer: GenesisWriter = default_genesis_writer,
       ready: Callable[[TestnetState, dict[str, Any]], str | None] | None = None,
       log: Callable[[str], None] = lambda s: None, wan: str | None = None,
       nat_fraction: float = 0.0, uplinks: Sequence[str] = (),
       downlinks: Sequence[str] = ()) -> TestnetState:
    """Create and start a testnet of ``n`` nodes in ``directory``; return when it is ready.

    ``ready(state, statuses)`` returns None when the network is ready, else what it waits for.
    ``wan`` names a profile (``testnet.wan.profiles``): each node then runs in a network
    namespace of its own, ``nat_fraction`` of them behind NAT routers (root needed), each
    with an access line drawn from the profile, or set by ``uplinks``/``downlinks``
    (``node2=1mbit``). If start-up fails, a ``wan`` testnet is stopped and its namespaces
    removed.
    """
    if nat_fraction and wan is None:
        raise TestnetError("--nat-fraction needs --wan PROFILE (NAT routers live in namespaces)")
    if (uplinks or downlinks) and wan is None:
        raise TestnetError("--uplink/--downlink need --wan PROFILE (lines are shaped in "
                           "namespaces)")
    if wan is not None:  # a mistake in the options is found before anything is wiped
        from testnet.wan import launcher as wan_launcher

        try:
            wan_launcher.check_options(n, wan, uplinks, downlinks)
        except wan_launcher.WanError as err:
            raise TestnetError(str(err)) from None
    if not 1 <= n <= MAX_NODES:
        raise TestnetError(f"-n must be between 1 and {MAX_NODES}, got {n}")
    if not 1 <= seeds <= n:
        raise TestnetError(f"--seeds must be between 1 and {n}, got {seeds}")
    if not 0 <= cheaters < n:
        raise TestnetError(f"--cheaters must be between 0 and {n - 1}, got {cheaters}")
    existing = TestnetState.load(directory)
    if existing and any(processes.alive(x.pid) for x in existing.nodes):
        raise TestnetError(f"a testnet is already running in {directory}; stop it with "
                           f"`novacron testnet down` first")
    if wan is not None:
        if base_port is not None:
            raise TestnetError("--base-port does not apply to --wan: every node listens on "
                               "its own address")
        from testnet.wan.plan import P2P_PORT

        ports = [P2P_PORT] * n
    elif base_port is not None:
        ports = list(range(base_port, base_port + n))
        taken = [p for p in ports if not processes.port_is_free(p)]
        if taken:
            raise TestnetError(f"port {taken[0]} on 127.0.0.1 is taken; pick another --base-port")
    else:
        ports = processes.free_ports(n)
    from daemon.genesis import DEFAULT_PARAMS

    unknown = sorted(set(params or {}) - set(DEFAULT_PARAMS))
    if unknown:
        raise TestnetError(f"unknown genesis parameter {unknown[0]!r} (known: "
                           f"{', '.join(DEFAULT_PARAMS)})")
    rng = random.Random(seed) if seed is not None else random.SystemRandom()
    directory.mkdir(parents=True, exist_ok=True)
    directory = directory.resolve()
    network = f"novacron-testnet-{rng.getrandbits(32):08x}"
    identities = [NodeIdentity(rng.randbytes(32) if seed is not None else os.urandom(32))
                  for _ in range(n)]
    state = TestnetState(network, str(directory), wan=wan)
    for i, (ident, port) in enumerate(zip(identities, ports)):
        role = "cheater" if i >= n - cheaters else "honest"
        state.nodes.append(_new_node_dir(directory, i, ident, port, role))
    if wan is not None:
        from testnet.wan import launcher as wan_launcher

        try:
            net = wan_launcher.create(directory, n, wan, nat_fraction, seeds, rng,
                                      uplinks, downlinks)
        except wan_launcher.WanError as err:
            raise TestnetError(str(err)) from None
        for node, nn in zip(state.nodes, net.plan.nodes):
            node.host, node.netns = nn.ip, nn.ns
        log(f"created {len(net.plan.namespaces)} network namespaces: {net.summary()}")
    # A testnet that did not come up is stopped (its logs stay): half a network left running
    # would hold its ports and make the next `up` refuse. Killed while waiting (SIGTERM, as a
    # test runner or service manager stops us): the same.
    on_term = raise_on_sigterm()
    try:
        return _start(state, identities, genesis_writer, params, seeds, wait, ready, log)
    except BaseException as err:
        if on_term is not None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal: finish cleaning up
        _stop_all(state)
        if wan is not None:
            wan_launcher.destroy(directory)
        if isinstance(err, TestnetError):
            raise TestnetError(f"{err}; its daemons were stopped") from None
        raise
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


def _start(state: TestnetState, identities: list[NodeIdentity], genesis_writer: GenesisWriter,
           params: dict[str, int] | None, seeds: int, wait: float,
           ready: Callable[[TestnetState, dict[str, Any]], str | None] | None,
           log: Callable[[str], None]) -> TestnetState:
    directory, network, n = Path(state.dir), state.network, len(state.nodes)
    genesis = directory / "genesis.toml"
    genesis_writer(network, identities, genesis, dict(params or {}))
    for i, node in enumerate(state.nodes):
        bootstrap = bootstrap_for(state.nodes, i, seeds)
        (Path(node.data_dir) / "node.toml").write_text(_node_config(network, node, bootstrap, genesis))
    for node in state.nodes:
        node.pid = processes.start(node)
    state.save()
    where = "in their namespaces" if state.wan else "on 127.0.0.1"
    log(f"started {n} daemons {where} (network {network}); waiting for them to be ready")
    wait_ready(state, wait, ready)
    return state


def add(directory: Path, wait: float = 30.0) -> NodeRecord:
    """Start one more node, not in the genesis: it joins through the directory committee."""
    state = load(directory)
    if len(state.nodes) >= MAX_NODES:
        raise TestnetError(f"a local testnet holds at most {MAX_NODES} nodes")
    if state.wan is not None:
        from testnet.wan import launcher as wan_launcher
        from testnet.wan.plan import P2P_PORT

        node = _new_node_dir(Path(state.dir), len(state.nodes), NodeIdentity(os.urandom(32)),
                             P2P_PORT, "honest")
        try:
            net = wan_launcher.add(Path(state.dir))
        except wan_launcher.WanError as err:
            raise TestnetError(str(err)) from None
        node.host, node.netns = net.ip, net.ns
    else:
        node = _new_node_dir(Path(state.dir), len(state.nodes), NodeIdentity(os.urandom(32)),
                             processes.free_ports(1)[0], "honest")
    # On a --wan testnet only the seed is surely dialable (node1 may sit behind NAT).
    bootstrap = [o.multiaddr for o in state.nodes[:1 if state.wan else 2]]
    (Path(node.data_dir) / "node.toml").write_text(
        _node_config(state.network, node, bootstrap, Path(state.dir) / "genesis.toml"))
    node.pid = processes.start(node)
    state.nodes.append(node)
    state.save()
    return _wait_node_ready(node, wait)


def bootstrap_for(nodes: list[NodeRecord], index: int, seeds: int) -> list[str]:
    """The first ``seeds`` nodes are the seeds; each node bootstraps to one of them (spread
    round-robin), and each seed to the other seeds (a lone seed to nobody: others dial it)."""
    if index < seeds:
        return [o.multiaddr for j, o in enumerate(nodes[:seeds]) if j != index]
    return [nodes[index % seeds].multiaddr]


def _new_node_dir(directory: Path, index: int, ident: NodeIdentity, port: int,
                  role: str) -> NodeRecord:
    """A fresh data directory ``node<index>`` holding the node's key (any old one is wiped)."""
    data = directory / f"node{index}"
    if data.exists():
        _wipe(data)
    data.mkdir(parents=True, mode=0o700)
    save_identity(ident, data / "node.key")
    return NodeRecord(f"node{index}", ident.node_id, port, str(data), role=role)


def _wait_node_ready(node: NodeRecord, wait: float) -> NodeRecord:
    """Poll one started node until it answers ``ready``; a clear error if it dies or stalls."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not processes.alive(node.pid):
            raise TestnetError(f"{node.name} exited during start-up: {_last_error(node)}")
        try:
            if _query(node, "status", timeout=2.0).get("ready"):
                return node
        except ControlError:
            pass
        time.sleep(0.05)  # polling another process
    raise TestnetError(f"{node.name} did not become ready within {wait:.0f} s; see "
                       f"{node.data_dir}/node.log")


def _wipe(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
    path.rmdir()


def statuses(state: TestnetState, timeout: float = 5.0) -> dict[str, Any]:
    """Each node's ``status`` answer, or {"error": ...} for nodes that do not answer."""
    out: dict[str, Any] = {}
    for node in state.nodes:
        proc_state = processes.state_of(node.pid)
        if proc_state != "running":
            out[node.name] = {"process": proc_state}
            continue
        try:
            st = _query(node, "status", timeout=timeout)
            st["process"] = "running"
            out[node.name] = st
        except ControlError as err:
            out[node.name] = {"process": "running", "error": str(err)}
    return out


READY_POLL_FIRST = 0.1
READY_POLL_MOST = 1.0
"""Seconds between rounds of ``status`` calls while waiting for a testnet: a small one
starts fast, a large one waits long, and asking each of 20 forming nodes ten times a second
cost them ~5% of their CPU, so the pause doubles up to a second."""


def wait_ready(state: TestnetState, timeout: float,
               ready: Callable[[TestnetState, dict[str, Any]], str | None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    waiting = "the nodes to start"
    pause = READY_POLL_FIRST
    while time.monotonic() < deadline:
        sts = statuses(state, timeout=2.0)
        dead = [name for name, st in sts.items() if st.get("process") == "dead"]
        if dead:
            node = state.node(dead[0])
            raise TestnetError(f"{dead[0]} exited during start-up: {_last_error(node)}")
        if all(st.get("ready") for st in sts.values()):
            waiting = (ready(state, sts) if ready else None) or ""
            if not waiting:
                return
        time.sleep(pause)  # polling other processes
        pause = min(pause * 2, READY_POLL_MOST)
    raise TestnetError(f"the testnet was not ready within {timeout:.0f} s (waiting for "
                       f"{waiting}); see the logs in {state.dir}/node*/node.log")


def _last_error(node: NodeRecord) -> str:
    log = Path(node.data_dir) / "stdout.log"
    try:
        lines = [l for l in log.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def load(directory: Path) -> TestnetState:
    state = TestnetState.load(directory)
    if state is None:
        raise TestnetError(f"no testnet in {directory}; start one with `novacron testnet up -n 5`")
    return state


def down(directory: Path) -> int:
    """Stop every node (and remove a ``--wan`` testnet's namespaces); return how many ran."""
    state = load(directory)
    stopped = _stop_all(state)
    if state.wan is not None or (Path(state.dir) / "wan.json").exists():
        from testnet.wan import launcher as wan_launcher

        wan_launcher.destroy(Path(state.dir))
    return stopped


def _stop_all(state: TestnetState) -> int:
    # Ask them all first, so they wind down together rather than one after another. Count
    # them as asked: one that exits before the second loop reaches it was running too.
    running = [node for node in state.nodes if processes.alive(node.pid)]
    for node in running:
        processes.send(node.pid, signal.SIGTERM)
        processes.send(node.pid, signal.SIGCONT)
    for node in state.nodes:
        processes.stop(node.pid)  # waits for it (SIGKILL after a while); nothing if gone
        node.pid = None
    stopped = len(running)
    state.save()
    return stopped


def _node(state: TestnetState, ref: str) -> NodeRecord:
    try:
        return state.node(ref)
    except KeyError as err:
        raise TestnetError(str(err.args[0])) from None


def kill(directory: Path, ref: str) -> NodeRecord:
    state = load(directory)
    node = _node(state, ref)
    if not processes.send(node.pid, signal.SIGKILL):
        raise TestnetError(f"{node.name} is not running")
    while processes.alive(node.pid):
        processes.reap(node.pid)  # type: ignore[arg-type]
        time.sleep(0.01)
    return node


def pause(directory: Path, ref: str) -> NodeRecord:
    state = load(directory)
    node = _node(state, ref)
    if processes.state_of(node.pid) != "running":
        raise TestnetError(f"{node.name} is not running (it is {processes.state_of(node.pid)})")
    processes.send(node.pid, signal.SIGSTOP)
    return node


def resume(directory: Path, ref: str) -> NodeRecord:
    state = load(directory)
    node = _node(state, ref)
    if processes.state_of(node.pid) != "paused":
        raise TestnetError(f"{node.name} is not paused (it is {processes.state_of(node.pid)})")
    processes.send(node.pid, signal.SIGCONT)
    return node


def restart(directory: Path, ref: str, wait: float = 30.0) -> NodeRecord:
    """Start a node again with its data directory (stopping it first if it still runs)."""
    state = load(directory)
    node = _node(state, ref)
    processes.stop(node.pid)
    if node.netns is None and not processes.port_is_free(node.port):
        raise TestnetError(f"port {node.port} of {node.name} is taken by another program")
    node.pid = processes.start(node)
    state.save()
    return _wait_node_ready(node, wait)

"""Bringing a namespace testnet's network up and down around the daemons.

``testnet.local.launcher.up(..., wan="planet")`` calls ``create`` before it starts the
daemons (each then runs inside its namespace, listening on its own address) and ``destroy``
on ``down`` or when start-up fails. ``<dir>/wan.json`` records the plan, each node's access
delay and line (up- and downlink, ``testnet.wan.links``) and the relay's pid, so that a later ``down``, ``partition`` or ``heal`` finds them;
the namespaces' names derive from the directory, so even without that file ``down`` removes
what an earlier run left.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testnet.wan import links as wan_links
from testnet.wan import namespaces, partition
from testnet.wan.links import LinkError, NodeLink, mbit
from testnet.wan.plan import PREFIX, NodeNet, Plan, build, choose_natted, extend, tag_for
from testnet.wan.profiles import Profile, draw_access, get
from testnet.wan.relay import READY_FILE, RelayConfig

WAN_FILE = "wan.json"


class WanError(Exception):
    """One line for the user."""


@dataclass
class Wan:
    directory: Path
    relay: RelayConfig
    relay_pid: int | None
    links: tuple[NodeLink, ...] = ()
    """Each node's access line, by index (empty: a wan.json written before lines differed)."""

    @property
    def plan(self) -> Plan:
        return self.relay.plan

    def link(self, index: int) -> NodeLink | None:
        return self.links[index] if index < len(self.links) else None

    def save(self) -> None:
        doc = {"relay": self.relay.to_json(), "relay_pid": self.relay_pid,
               "links": [link.to_json() for link in self.links]}
        tmp = self.directory / (WAN_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.directory / WAN_FILE)

    @classmethod
    def load(cls, directory: Path) -> "Wan | None":
        path = directory / WAN_FILE
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        return cls(directory, RelayConfig.from_json(doc["relay"]), doc.get("relay_pid"),
                   tuple(NodeLink.from_json(x) for x in doc.get("links", [])))

    def summary(self) -> str:
        natted = sum(n.natted for n in self.plan.nodes)
        p = self.relay.profile
        lo, hi = p.rtt_range_ms()
        ups = sorted(link.up_kbit for link in self.links)
        lines = f", uplinks {mbit(ups[0])}-{mbit(ups[-1])} Mbit/s" if ups else ""
        return (f"profile {p.name} (round trips {lo:.0f}-{hi:.0f} ms, loss {p.loss:.1%}"
                f"{lines}), {natted} of {len(self.plan.nodes)} nodes behind NAT")


def prefix_of(directory: Path) -> str:
    return f"{PREFIX}{tag_for(str(directory.resolve()))}-"


def check_options(n: int, profile_name: str, uplinks: Sequence[str] = (),
                  downlinks: Sequence[str] = ()) -> tuple[Profile, dict[int, int], dict[int, int]]:
    """The profile and the user's lines (kbit/s by node index); a WanError says what is wrong."""
    try:
        return (get(profile_name), wan_links.settings(list(uplinks), "--uplink", n),
                wan_links.settings(list(downlinks), "--downlink", n))
    except (ValueError, LinkError) as err:
        raise WanError(str(err)) from None


def create(directory: Path, n: int, profile_name: str, nat_fraction: float, seeds: int,
           rng: random.Random, uplinks: Sequence[str] = (),
           downlinks: Sequence[str] = ()) -> Wan:
    """Create the namespaces and start the relay; remove everything again if a step fails.

    Every node's line is drawn from the profile, then ``uplinks``/``downlinks`` (``node2=1mbit``,
    as ``--uplink``/``--downlink`` give them) set the ones the user chose."""
    profile, up_set, down_set = check_options(n, profile_name, uplinks, downlinks)
    try:
        order = list(range(n))
        rng.shuffle(order)
        natted = choose_natted(n, nat_fraction, seeds, order)
    except ValueError as err:
        raise WanError(str(err)) from None
    try:
        namespaces.check_can_create()
    except namespaces.NamespaceError as err:
        raise WanError(str(err)) from None
    plan = build(tag_for(str(directory.resolve())), n, natted)
    config = RelayConfig(plan, profile, tuple(draw_access(profile, n, rng)), rng.getrandbits(32))
    lines = wan_links.override(wan_links.draw(profile, n, rng), up_set, down_set)
    wan = Wan(directory, config, None, tuple(lines))
    try:
        namespaces.create(plan, profile, lines)
        wan.save()
        if profile.relayed:
            wan.relay_pid = _start_relay(directory)
            wan.save()
    except namespaces.NamespaceError as err:
        destroy(directory)
        raise WanError(str(err)) from None
    except BaseException:
        destroy(directory)
        raise
    return wan


def add(directory: Path, wait: float = 15.0) -> NodeNet:
    """One more node's namespace (``testnet add``), served by the running relay."""
    wan = Wan.load(directory)
    if wan is None:
        raise WanError(f"no namespace testnet in {directory}")
    plan = extend(wan.plan)
    node = plan.nodes[-1]
    rng = random.Random(wan.relay.seed + node.index)
    access = wan.relay.access_ms + tuple(draw_access(wan.relay.profile, 1, rng))
    line = wan_links.draw(wan.relay.profile, 1, rng)[0]
    try:
        namespaces.create_node(plan.core_ns, node, wan.relay.profile, line)
    except namespaces.NamespaceError as err:
        namespaces.remove(node.ns)
        raise WanError(str(err)) from None
    wan.relay = RelayConfig(plan, wan.relay.profile, access, wan.relay.seed)
    if len(wan.links) == node.index:
        wan.links += (line,)
    wan.save()
    if wan.relay_pid:
        os.kill(wan.relay_pid, signal.SIGHUP)
        _wait_served(directory, len(plan.nodes), None, wait)
    return node


def _wait_served(directory: Path, count: int, proc: subprocess.Popen[bytes] | None,
                 wait: float) -> None:
    """Wait until the relay says it serves ``count`` namespaces."""
    ready = directory / READY_FILE
    deadline = time.monotonic() + wait
    while True:
        try:
            if int(ready.read_text().strip() or 0) >= count:
                return
        except (OSError, ValueError):
            pass
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            if proc is not None:
                _stop(proc.pid)
            raise WanError(f"the delay relay did not start; see {directory}/relay.log")
        time.sleep(0.02)  # polling another process


def _start_relay(directory: Path, wait: float = 15.0) -> int:
    ready = directory / READY_FILE
    ready.unlink(missing_ok=True)
    log = open(directory / "relay.log", "ab")
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen([sys.executable, "-m", "testnet.wan.relay", str(directory / WAN_FILE)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=root)
    log.close()
    wan = Wan.load(directory)
    _wait_served(directory, len(wan.plan.nodes) if wan else 1, proc, wait)
    return proc.pid


def _stop(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM the relay, SIGKILL it if it lingers (it holds no state worth a clean exit)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return  # our child, reaped
            except ChildProcessError:
                pass  # started by another launcher process: poll whether it is gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)  # polling another process


def destroy(directory: Path) -> int:
    """Stop the relay and remove every namespace of this testnet; return how many went."""
    wan = Wan.load(directory)
    if wan is not None and wan.relay_pid:
        _stop(wan.relay_pid)
    if wan is not None:
        wan.relay_pid = None
        wan.save()
    return namespaces.remove(prefix_of(directory))


def cut(directory: Path, words: list[str], names: list[str]) -> list[list[str]]:
    """``testnet partition``: drop traffic between the groups (replacing any partition)."""
    wan = _require(directory)
    try:
        groups = partition.parse(words, names)
    except partition.PartitionError as err:
        raise WanError(str(err)) from None
    public = {f"node{n.index}": n.public_ip for n in wan.plan.nodes}
    namespaces.apply_table(wan.plan.core_ns, partition.TABLE, partition.rules(groups, public))
    return groups


def heal(directory: Path) -> None:
    wan = _require(directory)
    namespaces.drop_table(wan.plan.core_ns, partition.TABLE)


def _require(directory: Path) -> Wan:
    wan = Wan.load(directory)
    if wan is None or not namespaces.listed(wan.plan.core_ns):
        raise WanError("partitions need a namespace testnet; start one with "
                       "`novacron testnet up --wan planet`")
    return wan

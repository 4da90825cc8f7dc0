"""Bringing a namespace testnet's network up and down around the daemons.

``testnet.local.launcher.up(..., wan="planet")`` calls ``create`` before it starts the
daemons (each then runs inside its namespace, listening on its own address) and ``destroy``
on ``down`` or when start-up fails. ``<dir>/wan.json`` records the plan, each node's access
delay and the relay's pid, so that a later ``down``, ``partition`` or ``heal`` finds them;
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
from dataclasses import dataclass
from pathlib import Path

from testnet.wan import namespaces, partition
from testnet.wan.plan import PREFIX, NodeNet, Plan, build, choose_natted, extend, tag_for
from testnet.wan.profiles import draw_access, get
from testnet.wan.relay import READY_FILE, RelayConfig

WAN_FILE = "wan.json"


class WanError(Exception):
    """One line for the user."""


@dataclass
class Wan:
    directory: Path
    relay: RelayConfig
    relay_pid: int | None

    @property
    def plan(self) -> Plan:
        return self.relay.plan

    def save(self) -> None:
        doc = {"relay": self.relay.to_json(), "relay_pid": self.relay_pid}
        tmp = self.directory / (WAN_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2))
        tmp.replace(self.directory / WAN_FILE)

    @classmethod
    def load(cls, directory: Path) -> "Wan | None":
        path = directory / WAN_FILE
        if not path.exists():
            return None
        doc = json.loads(path.read_text())
        return cls(directory, RelayConfig.from_json(doc["relay"]), doc.get("relay_pid"))

    def summary(self) -> str:
        natted = sum(n.natted for n in self.plan.nodes)
        lo, hi = self.relay.profile.rtt_range_ms()
        return (f"profile {self.relay.profile.name} (round trips {lo:.0f}-{hi:.0f} ms, loss "
                f"{self.relay.profile.loss:.1%}, {self.relay.profile.rate_mbit} Mbit/s), "
                f"{natted} of {len(self.plan.nodes)} nodes behind NAT")


def prefix_of(directory: Path) -> str:
    return f"{PREFIX}{tag_for(str(directory.resolve()))}-"


def create(directory: Path, n: int, profile_name: str, nat_fraction: float, seeds: int,
           rng: random.Random) -> Wan:
    """Create the namespaces and start the relay; remove everything again if a step fails."""
    try:
        profile = get(profile_name)
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
    wan = Wan(directory, config, None)
    try:
        namespaces.create(plan, profile)
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
    try:
        namespaces.create_node(plan.core_ns, node, wan.relay.profile)
    except namespaces.NamespaceError as err:
        namespaces.remove(node.ns)
        raise WanError(str(err)) from None
    wan.relay = RelayConfig(plan, wan.relay.profile, access, wan.relay.seed)
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

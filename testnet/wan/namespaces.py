"""Creating and removing a testnet's network namespaces, veths, qdiscs and nftables: the I/O.

``create(plan, profile, links)`` builds what ``testnet.wan.plan`` describes, each node's
access line shaped to its own up- and downlink (``testnet.wan.links``); ``remove(prefix)``
deletes every namespace whose name starts with the testnet's prefix (the veths, qdiscs and
nftables tables inside go with them). Nothing is created in the machine's own namespace, so
removing the namespaces removes everything. ``create`` removes what it made if any step fails.

``enter(ns)`` switches the calling thread into a namespace (``setns``), for the relay, which
creates its sockets inside the nodes' namespaces from one process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from testnet.wan import nat
from testnet.wan.links import NodeLink
from testnet.wan.plan import PREFIX, NodeNet, Plan
from testnet.wan.profiles import Profile

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
TOOLS = {"ip": "iproute2", "tc": "iproute2", "nft": "nftables"}


class NamespaceError(Exception):
    """One line for the user: what failed and what to do."""


def check_can_create() -> None:
    """Raise ``NamespaceError`` (one line) unless we are root and have ip, tc and nft."""
    if os.geteuid() != 0:
        raise NamespaceError("--wan needs root to create network namespaces; run as root, or "
                             "leave out --wan for a testnet on 127.0.0.1")
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            raise NamespaceError(f"--wan needs `{tool}`; install the Debian package {package} "
                                 f"(scripts/setup.sh does, as root)")


def _run(*cmd: str, stdin: str | None = None) -> None:
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise NamespaceError(f"`{' '.join(cmd)}` failed: {res.stderr.strip() or res.returncode}")


def ip(ns: str, *args: str) -> None:
    _run("ip", "-n", ns, *args)


def nft(ns: str, script: str) -> None:
    _run("ip", "netns", "exec", ns, "nft", "-f", "-", stdin=script)


def sysctl(ns: str, key: str, value: str) -> None:
    _run("ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}")


def shape(ns: str, dev: str, rate_kbit: int) -> None:
    """Limit ``dev``'s egress to ``rate_kbit`` with a token bucket (``tbf``): bursts of 4 ms
    at the rate, and a queue of 100 ms at the rate but at least 32 KB, as an access line's
    modem has (on a slow DSL line that queue is what makes a busy line's round trip swell)."""
    burst = max(rate_kbit // 2000, 16)  # kbytes: 4 ms at the rate
    limit = max(rate_kbit * 100 // 8, 32 * 1024)  # bytes: 100 ms at the rate
    _run("tc", "-n", ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate",
         f"{rate_kbit}kbit", "burst", f"{burst}kb", "limit", str(limit))


def listed(prefix: str = PREFIX) -> list[str]:
    """Namespaces (by name) that start with ``prefix``."""
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    return [line.split()[0] for line in res.stdout.splitlines()
            if line.strip() and line.split()[0].startswith(prefix)]


def remove(prefix: str) -> int:
    """Delete every namespace starting with ``prefix``; return how many went."""
    if not prefix.startswith(PREFIX) or len(prefix) <= len(PREFIX):
        raise ValueError(f"refusing to remove namespaces by the prefix {prefix!r}")
    gone = 0
    for ns in listed(prefix):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        gone += 1
    return gone


def create(plan: Plan, profile: Profile, links: Sequence[NodeLink]) -> None:
    """Build the plan's namespaces and links (node i's line: ``links[i]``); on any failure
    remove them and re-raise."""
    prefix = f"{PREFIX}{plan.tag}-"
    remove(prefix)  # what a crashed launcher of this directory may have left
    try:
        _create(plan, profile, links)
    except BaseException:
        remove(prefix)
        raise


def _create(plan: Plan, profile: Profile, links: Sequence[NodeLink]) -> None:
    core = plan.core_ns
    _run("ip", "netns", "add", core)
    ip(core, "link", "set", "lo", "up")
    sysctl(core, "net.ipv4.ip_forward", "1")
    for node, link in zip(plan.nodes, links, strict=True):
        create_node(core, node, profile, link)


def create_node(core: str, node: NodeNet, profile: Profile, link: NodeLink) -> None:
    """One node's namespace (and NAT router), linked to the ``core`` namespace by its access
    line: ``link.up_kbit`` leaving the node (or its router), ``link.down_kbit`` toward it."""
    _run("ip", "netns", "add", node.ns)
    ip(node.ns, "link", "set", "lo", "up")
    octet = node.index + 1
    # The node's (or its router's) link to the core: its access link, shaped both ways.
    edge = node.router_ns or node.ns
    edge_if = "wan0" if node.natted else "eth0"
    if node.natted:
        _run("ip", "netns", "add", edge)
        ip(edge, "link", "set", "lo", "up")
        sysctl(edge, "net.ipv4.ip_forward", "1")
    ip(core, "link", "add", node.core_if, "type", "veth", "peer", "name", edge_if,
       "netns", edge)
    ip(core, "addr", "add", f"198.18.{octet}.1/24", "dev", node.core_if)
    ip(core, "link", "set", node.core_if, "up")
    ip(edge, "addr", "add", f"198.18.{octet}.2/24", "dev", edge_if)
    ip(edge, "link", "set", edge_if, "up")
    ip(edge, "route", "add", "default", "via", f"198.18.{octet}.1")
    shape(core, node.core_if, link.down_kbit)
    shape(edge, edge_if, link.up_kbit)
    if node.natted:
        assert node.router_ns is not None
        ip(edge, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0",
           "netns", node.ns)
        ip(edge, "addr", "add", f"{node.gateway}/24", "dev", "lan0")
        ip(edge, "link", "set", "lan0", "up")
        ip(node.ns, "addr", "add", f"{node.ip}/24", "dev", "eth0")
        ip(node.ns, "link", "set", "eth0", "up")
        ip(node.ns, "route", "add", "default", "via", node.gateway)
        nft(edge, nat.router_rules(node))
    if profile.relayed:
        nft(node.ns, nat.node_rules(node))


def apply_table(ns: str, table: str, script: str) -> None:
    """Replace the nftables ``table`` in ``ns`` by ``script`` atomically."""
    nft(ns, f"add table ip {table}\ndelete table ip {table}\n{script}")


def drop_table(ns: str, table: str) -> None:
    nft(ns, f"add table ip {table}\ndelete table ip {table}\n")


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextlib.contextmanager
def enter(ns: str) -> Iterator[None]:
    """Run the block in namespace ``ns`` (this thread only); sockets made there stay there."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(str(NETNS_DIR / ns), os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)

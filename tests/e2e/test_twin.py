"""Issue 13: a copy of a node's data directory, started where it cannot dial the original (nor
the original it), is still found out through the neighbours they share
(``daemon.softstate.twins``): the copy, started later, steps aside in one line and exits
non-zero; the original says in ``status`` and its log that another daemon held its key, keeps
its committee seat and goes on committing.

Everything runs in a network namespace of the test's own, where nftables drops every new
connection to either daemon's port (as for two volunteers behind NATs: the copy's start-up
probe of the original's address gets no answer); both dial the other members, which then see
one peer id on two connections."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.cli import CLI, as_json, eventually, ok

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"),
    reason="needs root, ip and nft: the test makes a network namespace of its own")


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def netns():
    name = f"nc13twin{os.getpid() % 100_000}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def test_a_copy_that_cannot_dial_the_original_is_found_in_the_soft_state_and_steps_aside(
        netns, tmp_path):
    ns = ["ip", "netns", "exec", netns]
    tn = tmp_path / "tn"
    res = subprocess.run([*ns, *CLI, "testnet", "up", "-n", "3", "--dir", str(tn), "--seed", "13"],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    copy_proc = None
    try:
        nodes = json.loads((tn / "testnet.json").read_text())["nodes"]
        original = Path(nodes[0]["data_dir"])
        me = nodes[0]["node_id"]
        port = nodes[0]["port"]
        copy_port = max(n["port"] for n in nodes) + 1
        # Neither daemon accepts new connections (the original's open ones stay up).
        sh(*ns, "nft", "add", "table", "inet", "twin")
        sh(*ns, "nft", "add", "chain", "inet", "twin", "input",
           "{ type filter hook input priority 0 ; }")
        sh(*ns, "nft", "add", "rule", "inet", "twin", "input", "tcp", "dport",
           f"{{ {port}, {copy_port} }}", "tcp", "flags", "&", "(syn|ack)", "==", "syn", "drop")

        copy = tmp_path / "copy"
        shutil.copytree(original, copy, ignore=shutil.ignore_patterns("control.sock", "*.log"))
        log = open(tmp_path / "copy.out", "w")
        copy_proc = subprocess.Popen(
            [*ns, *CLI, "daemon", "--config", str(original / "node.toml"), "--data-dir", str(copy),
             "--listen", f"/ip4/127.0.0.1/tcp/{copy_port}",
             *(x for n in nodes[1:] for x in (
                 "--bootstrap", f"/ip4/127.0.0.1/tcp/{n['port']}/p2p/{n['node_id']}"))],
            stdout=log, stderr=subprocess.STDOUT, text=True)
        started = time.monotonic()
        # The start-up probe could not dial the original: the copy starts, and steps aside
        # once the neighbours' answers show it the original's record naming it.
        code = copy_proc.wait(timeout=180)
        out = (tmp_path / "copy.out").read_text()
        assert code != 0, out[-3000:]
        last = out.strip().splitlines()[-1]
        assert last.startswith(f"novacron: node {me} also runs at /ip4/127.0.0.1/tcp/{port}"), last
        assert "so this one steps aside" in last
        assert "is up" in (copy / "node.log").read_text()  # it did start before it stood down

        # The original says so in status and its log, and keeps committing.
        seen = ("another daemon with this node's key started later at "
                f"/ip4/127.0.0.1/tcp/{copy_port}")
        health = as_json("status", "--data-dir", str(original))["health"]
        assert seen in health, health
        assert "keeps its seat" in (original / "node.log").read_text()
        for i in (0, 1):
            out = ok("kv", "put", f"after-copy-{i}", "x", "--data-dir", nodes[i]["data_dir"],
                     timeout=90)
            assert out.startswith("committed"), out
        assert me in as_json("committees", "--data-dir", nodes[1]["data_dir"])["members"]
        # The neighbours that saw both records count the evidence.
        witnessed = [as_json("status", "--data-dir", n["data_dir"])["services"]["softstate"]
                     ["twins"]["twins_witnessed"] for n in nodes[1:]]
        assert sum(witnessed) >= 1, witnessed
        print(json.dumps({"copy_stepped_aside_after_s": round(time.monotonic() - started, 1)}))
    finally:
        if copy_proc is not None and copy_proc.poll() is None:
            copy_proc.kill()
        subprocess.run([*ns, *CLI, "testnet", "down", "--dir", str(tn)], capture_output=True,
                       timeout=120)

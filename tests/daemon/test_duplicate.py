"""One key, one daemon: a node whose key is already live at an address it was last seen at
finds its twin there (a real libp2p host on 127.0.0.1), and nothing where nobody or somebody
else answers."""

from __future__ import annotations

import pytest
import trio

from daemon.duplicate import find_live_twin, probe_targets
from tests.daemon.p2p.conftest import identity, make_host, running


def test_probe_targets_are_dialable_tcp_addresses():
    assert probe_targets([
        "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWabc", "/ip4/127.0.0.1/tcp/4001",
        "/ip4/0.0.0.0/tcp/4002", "/ip4/127.0.0.1/tcp/0", "/ip6/::/tcp/4003", "/dns4/x/tcp/1",
        "garbage"]) == ["/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/tcp/4002", "/ip6/::1/tcp/4003"]
    assert len(probe_targets(f"/ip4/127.0.0.1/tcp/{p}" for p in range(1000, 1100))) == 8


@pytest.mark.trio
async def test_a_live_twin_is_found_and_a_stranger_is_not():
    original = make_host("original")
    stranger = make_host("stranger")
    free = "/ip4/127.0.0.1/tcp/1"  # nothing listens on port 1 here: refused at once
    async with running(original, stranger):
        at = original.listen_addrs()[0]
        other = stranger.listen_addrs()[0]
        assert await find_live_twin(identity("original"), [free, other, at]) == at.split("/p2p/")[0]
        assert await find_live_twin(identity("original"), [free, other]) is None
        assert await find_live_twin(identity("original"), []) is None
        # The original is undisturbed: it still answers its real peers.
        assert original.listen_addrs() == [at]
    with trio.fail_after(10):
        assert await find_live_twin(identity("original"), [at]) is None  # stopped: no twin

import logging
from importlib.metadata import version

import pytest
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.rpc_queue import RpcQueue

from daemon.p2p import libp2p_fixes
from daemon.p2p.libp2p_fixes import CountingPriorityQueue, _SizedPeerQueues, route_libp2p_logging


def test_pinned_to_the_installed_libp2p():
    assert version("libp2p") == libp2p_fixes.SUPPORTED_LIBP2P_VERSION == "0.8.1"


def routed(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # pytest also attaches its capture handler straight onto non-propagating loggers such as
    # "libp2p"; what the daemon's logging sees is what arrives under our name.
    return [r for r in caplog.records if r.name.startswith("novacron.")]


@pytest.fixture
def restore_libp2p_logger():
    logger = logging.getLogger("libp2p")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    ours = logging.getLogger("novacron.p2p.libp2p")
    ours_level = ours.level
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]
    ours.setLevel(ours_level)


def test_libp2p_records_arrive_under_our_logger_at_warning_and_above(caplog, restore_libp2p_logger):
    route_libp2p_logging("WARNING")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("libp2p.pubsub.gossipsub").warning("mesh trouble")
        logging.getLogger("libp2p.pubsub.gossipsub").info("chatter")
        # auto_connector sets its own logger to INFO at import; the gate still applies.
        logging.getLogger("libp2p.network.auto_connector").info("more chatter")
    seen = [(r.name, r.levelname, r.getMessage()) for r in routed(caplog)]
    assert seen == [("novacron.p2p.libp2p.pubsub.gossipsub", "WARNING", "mesh trouble")]


def test_our_logging_configuration_governs_libp2p_records(caplog, restore_libp2p_logger):
    route_libp2p_logging("DEBUG")
    logging.getLogger("novacron.p2p.libp2p").setLevel(logging.ERROR)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("libp2p.host.basic_host").warning("hidden by our level")
        logging.getLogger("libp2p.host.basic_host").error("shown")
    assert [r.getMessage() for r in routed(caplog)] == ["shown"]


def test_full_gossip_peer_queues_count_what_they_drop():
    drops: list[tuple[str, int]] = []
    queues = _SizedPeerQueues(2, lambda cause, n: drops.append((cause, n)))
    queue = RpcQueue()  # py-libp2p's default: 32 slots, silent
    queues[ID(b"peer")] = queue
    assert isinstance(queue._queue, CountingPriorityQueue) and queue._queue.max_size == 2
    publish = rpc_pb2.RPC(publish=[rpc_pb2.Message(data=b"a"), rpc_pb2.Message(data=b"b")])
    control = rpc_pb2.RPC(control=rpc_pb2.ControlMessage(graft=[rpc_pb2.ControlGraft(topicID="t")]))
    assert queue.push(publish) and queue.push(publish)
    assert not queue.push(publish)
    assert not queue.push(control, priority=True)
    assert drops == [("peer_queue_full", 2), ("control_queue_full", 1)]


def test_a_wildcard_listen_address_is_advertised_as_concrete_ones_loopback_last():
    """A volunteer's default listen address, 0.0.0.0, cannot be dialled: its record carries
    the interface addresses instead (nothing is bound here; only names are computed)."""
    from multiaddr import Multiaddr

    from daemon.p2p.libp2p_fixes import expand_wildcard

    peer = "12D3KooWFSFQkxKFMkAL7rNY8wtCwXhdztGiETG6ZLPAJohgcnkx"
    out = expand_wildcard(Multiaddr(f"/ip4/0.0.0.0/tcp/4001/p2p/{peer}"))
    assert out and all(a.endswith(f"/tcp/4001/p2p/{peer}") for a in out)
    assert not any("/0.0.0.0/" in a for a in out)
    loopback = [a.startswith(("/ip4/127.", "/ip6/::1/")) for a in out]
    assert loopback == sorted(loopback)  # loopback last

"""How long a dial may take follows the round trips measured (pure: ``rtt.dial_wait``)."""

from daemon.p2p.config import P2PConfig
from daemon.p2p.rtt import DIAL_RTTS, RttTable, dial_wait
from protocol.identity import NodeId

CFG = P2PConfig(dial_timeout=5.0, dial_timeout_ceiling=30.0)
NEAR, FAR, NEW = NodeId("near"), NodeId("far"), NodeId("new")


def table(**rtts: float) -> RttTable:
    t = RttTable()
    for peer, rtt in rtts.items():
        for i in range(20):  # steady samples: the variation decays, conservative ~ srtt
            t.sample(NodeId(peer), rtt, float(i))
    return t


def test_a_fast_network_keeps_the_base_timeout():
    t = table(near=0.002)
    assert dial_wait(t, NEAR, ["near"], CFG) == 5.0
    assert dial_wait(RttTable(), NEW, [], CFG) == 5.0  # nothing measured yet


def test_a_far_or_loaded_peer_gets_round_trips_and_an_unmeasured_one_the_networks():
    t = table(near=0.002, far=1.5)
    far = dial_wait(t, FAR, ["near", "far"], CFG)
    assert DIAL_RTTS * 1.5 <= far < DIAL_RTTS * 1.5 * 1.05
    # A peer not measured yet: the median of the connected peers' round trips.
    t2 = table(a=1.0, b=1.2, c=3.0)
    assert abs(dial_wait(t2, NEW, ["a", "b", "c"], CFG) - DIAL_RTTS * 1.2) < 0.1


def test_never_above_the_ceiling():
    assert dial_wait(table(far=20.0), FAR, ["far"], CFG) == 30.0

"""A candidate's link cost toward a job's submitter, from the published link estimates, and
what placement makes of it."""

from __future__ import annotations

from daemon.ledger.placing import to_candidate
from daemon.links.summary import PredictedLink
from daemon.sched.placement import PlacementInputs, TaskNeeds, place
from daemon.sched.profile import WeekProfile
from daemon.sched.summary import AvailabilitySummary
from daemon.sched.timebase import HOUR
from daemon.softstate.candidates import CONNECTED_LINK_MS, MAX_LINK_MS, with_link_costs
from protocol.messages.ledger import CandidateWire

NOW = 1_706_486_400.0


def wire(name: str) -> CandidateWire:
    avail = AvailabilitySummary(shape=1.0, scale_h=720.0, events=20, exposure_h=20 * 720.0,
                                on_fraction=0.9, up_since=NOW - 10 * HOUR,
                                profile=WeekProfile.flat())
    return CandidateWire(node_id=name, availability=avail.to_wire(), cores=4, memory_mib=8192,
                         runtimes=("wasm32-wasi",), attestation=0, load_permille=100,
                         link_ms=CONNECTED_LINK_MS, domain=name, vouched_since_s=0)


def link(low: float, rtt_s: float) -> PredictedLink:
    return PredictedLink(low * 2, low, rtt_s, 0.7, "x", 10.0, 5, False)


def test_link_cost_is_the_predicted_time_to_send_the_output() -> None:
    cands = (wire("fast"), wire("slow"), wire("unmeasured"), wire("awful"))
    predicted = {"fast": link(10e6, 0.002), "slow": link(50e3, 0.2), "awful": link(1.0, 5.0)}
    out = {c.node_id: c.link_ms for c in with_link_costs(cands, predicted, 100_000)}
    assert out == {"fast": CONNECTED_LINK_MS, "slow": 2200, "unmeasured": 200,  # the prior
                   "awful": MAX_LINK_MS}
    # a tiny output: the round trip is what is left
    assert [c.link_ms for c in with_link_costs(cands[1:2], predicted, 0)] == [200]


def test_placement_prefers_the_good_link_among_peers_otherwise_alike() -> None:
    cands = with_link_costs((wire("a"), wire("b"), wire("c")),
                            {"a": link(20e3, 0.3), "b": link(5e6, 0.01)}, 200_000)
    needs = TaskNeeds(duration_s=20.0, replicas=2)
    p = place(PlacementInputs(needs, tuple(to_candidate(c, 0.9) for c in cands), NOW, b"t"))
    assert p.chosen == ("b", "c")  # a: 10.3 s to send 200 kB back; c unmeasured: 0.3 s
    shown = {n: p.explanation.verdict(n).factors.link_s for n in "abc"}  # type: ignore[union-attr]
    assert shown == {"a": 10.3, "b": 0.05, "c": 0.3}

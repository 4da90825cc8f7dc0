import dataclasses
import json
import random

import pytest
from hypothesis import given, settings, strategies as st

from daemon.sched import explain as ex
from daemon.sched.placement import Candidate, PlacementInputs, TaskNeeds, check_placement, place
from daemon.sched.profile import WeekProfile
from daemon.sched.summary import AvailabilitySummary
from daemon.sched.timebase import HOUR
from protocol.attestation import AttestationLevel as A
from protocol.identity import NodeId

NOW = 1_706_486_400.0  # a Monday, 00:00 UTC


def summary(shape=1.0, scale_h=720.0, events=20, up_h=10.0) -> AvailabilitySummary:
    return AvailabilitySummary(
        shape=shape, scale_h=scale_h, events=events, exposure_h=events * scale_h, on_fraction=0.9,
        up_since=None if up_h is None else NOW - up_h * HOUR, profile=WeekProfile.flat(),
    )


SERVER = summary()
DESKTOP = summary(0.55, 35.3, 15, up_h=30.0)
FLAKY = summary(0.85, 2.0, 50, up_h=0.5)


def cand(name, avail=SERVER, **kw) -> Candidate:
    base = dict(
        node_id=NodeId(name), availability=avail, cores=4, memory_mib=8192,
        runtimes=frozenset({"wasm32-wasi"}), attestation=A.TPM, reputation=0.9, load=0.1,
        link_s=2.0, domain=f"dom-{name}",
    )
    base.update(kw)
    return Candidate(**base)


def inputs(cands, seed=b"task", **needs) -> PlacementInputs:
    return PlacementInputs(TaskNeeds(**{"duration_s": 4 * HOUR, **needs}), tuple(cands), NOW, seed)


def test_long_task_goes_to_the_peer_likely_to_stay_up():
    p = place(inputs([cand("flaky", FLAKY), cand("server", SERVER), cand("desk", DESKTOP)]))
    assert p.chosen == (NodeId("server"),) and p.complete
    flaky = p.explanation.verdict(NodeId("flaky"))
    assert flaky is not None and flaky.code == ex.OUTSCORED
    assert flaky.factors.p_finish < 0.3 < p.explanation.chosen[0].factors.p_finish
    assert "of the weakest chosen peer server" in flaky.reason


def test_reputation_load_and_link_are_weighed():
    a, b = cand("a", reputation=0.5), cand("b", reputation=0.95)
    assert place(inputs([a, b])).chosen == (NodeId("b"),)
    slow = cand("slow", DESKTOP, load=1.0, link_s=3 * HOUR)
    fast = cand("fast", DESKTOP, load=0.0, link_s=1.0)
    p = place(inputs([slow, fast]))
    assert p.chosen == (NodeId("fast"),)
    v = p.explanation.verdict(NodeId("slow"))
    assert v is not None and v.factors.wall_s == pytest.approx(3 * HOUR + 8 * HOUR)


@pytest.mark.parametrize(
    "kw,code,words",
    [
        (dict(attestation=A.NONE), ex.ATTESTATION, "attestation NONE below the task's minimum TPM"),
        (dict(memory_mib=512), ex.MEMORY, "offers 512 MiB, the task needs 2048 MiB"),
        (dict(cores=0), ex.CORES, "offers 0 cores"),
        (dict(runtimes=frozenset({"python"})), ex.RUNTIME, "does not offer runtime wasm32-wasi"),
        (dict(reputation=0.0), ex.REPUTATION, "reputation 0"),
        (dict(availability=summary(up_h=None)), ex.DOWN, "not up"),
    ],
)
def test_each_hard_rule_rejects_with_its_reason(kw, code, words):
    best = cand("best", **{"reputation": 1.0, **kw})
    p = place(inputs([best, cand("ok", DESKTOP)], memory_mib=2048, min_attestation=A.TPM))
    assert p.chosen == (NodeId("ok"),)
    v = p.explanation.verdict(NodeId("best"))
    assert v is not None and v.code == code and words in v.reason
    assert dict(p.explanation.rejected_counts) == {code: 1}


def test_replicas_are_spread_over_failure_domains():
    same = [cand(f"s{i}", domain="10.0.0.0/24", reputation=1.0) for i in range(3)]
    other = [cand("o1", DESKTOP, domain="10.0.1.0/24"), cand("o2", DESKTOP, domain="10.0.2.0/24")]
    p = place(inputs(same + other, replicas=3))
    assert len(p.chosen) == 3 and len({c.split("/")[0] for c in p.chosen}) == 3
    domains = {v.factors.domain for v in p.explanation.chosen}
    assert domains == {"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"}
    blocked = [v for v in p.explanation.rejected if v.code == ex.DOMAIN]
    assert len(blocked) == 2 and all("same failure domain 10.0.0.0/24 as chosen peer" in v.reason for v in blocked)


def test_two_domains_for_three_replicas_split_two_and_one():
    cs = [cand(f"a{i}", domain="A") for i in range(3)] + [cand(f"b{i}", DESKTOP, domain="B") for i in range(3)]
    p = place(inputs(cs, replicas=3))
    doms = sorted(v.factors.domain for v in p.explanation.chosen)
    assert p.complete and doms in (["A", "A", "B"], ["A", "B", "B"])


def test_one_domain_can_never_hold_every_replica():
    cs = [cand(f"a{i}", domain="AS64500") for i in range(5)]
    p = place(inputs(cs, replicas=3))
    assert len(p.chosen) == 2 and not p.complete
    assert "1 failure domain(s)" in (p.explanation.shortfall or "")


def test_ties_break_deterministically_but_not_always_toward_the_same_peer():
    twins = [cand(f"twin{i}") for i in range(8)]
    picks = {place(inputs(twins, seed=f"task-{t}".encode())).chosen[0] for t in range(40)}
    assert len(picks) >= 4
    one = inputs(twins, seed=b"task-7")
    assert place(one) == place(one)
    assert all("lost this task's tie-break" in v.reason for v in place(one).explanation.rejected)


def test_every_choice_and_the_best_rejections_are_explained_in_json():
    cs = [cand("server"), cand("desk", DESKTOP), cand("flaky", FLAKY), cand("weak", attestation=A.NONE)]
    p = place(inputs(cs, replicas=2, min_attestation=A.TPM))
    d = json.loads(json.dumps(p.explanation.to_dict()))
    assert [c["node_id"] for c in d["chosen"]] == list(p.chosen)
    assert {r["node_id"] for r in d["rejected"]} == {"flaky", "weak"}
    for v in d["chosen"] + d["rejected"]:
        assert set(v["factors"]) >= {"p_finish", "reputation", "load", "attestation", "link_s", "domain"}
        assert v["reason"]
    assert sum(d["rejected_counts"].values()) == len(cs) - len(p.chosen)
    text = p.explanation.render()
    assert "server" in text and "attestation NONE below" in text


def test_backup_accepts_the_primarys_placement_and_catches_bad_ones():
    cs = [cand("server"), cand("desk", DESKTOP), cand("flaky", FLAKY), cand("weak", attestation=A.NONE)]
    inp = inputs(cs, replicas=2, min_attestation=A.TPM)
    good = place(inp)
    assert check_placement(good, inp) is None
    assert check_placement(tuple(reversed(good.chosen)), inp) is None  # same peers, other order
    assert "not among the candidates" in check_placement((NodeId("server"), NodeId("ghost")), inp)
    assert "not eligible" in check_placement((NodeId("server"), NodeId("weak")), inp)
    assert "twice" in check_placement((NodeId("server"), NodeId("server")), inp)
    assert "call for 2" in check_placement((NodeId("server"),), inp)
    assert "not the best placement" in check_placement((NodeId("server"), NodeId("flaky")), inp)


def test_backup_rejects_replicas_piled_into_one_domain():
    cs = [cand("a1", domain="A"), cand("a2", domain="A"), cand("b1", DESKTOP, domain="B")]
    inp = inputs(cs, replicas=2)
    assert check_placement(place(inp), inp) is None
    assert "failure domain" in check_placement((NodeId("a1"), NodeId("a2")), inp)


def test_backup_accepts_an_equally_good_placement_from_another_tie_break():
    twins = [cand(f"twin{i}") for i in range(4)]
    inp = inputs(twins)
    other = next(c.node_id for c in twins if c.node_id != place(inp).chosen[0])
    assert check_placement((other,), inp) is None


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        inputs([cand("x"), cand("x")])
    with pytest.raises(ValueError):
        cand("x", reputation=1.5)
    with pytest.raises(ValueError):
        TaskNeeds(duration_s=0)
    with pytest.raises(ValueError):
        TaskNeeds(duration_s=60, replicas=0)


_avails = st.sampled_from([SERVER, DESKTOP, FLAKY, summary(up_h=None), None, summary(0.5, 8.0, 2, 3.0)])


@st.composite
def _candidates(draw):
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        out.append(cand(
            f"p{i}", draw(_avails),
            attestation=draw(st.sampled_from(list(A))),
            reputation=draw(st.sampled_from([0.0, 0.3, 0.9, 1.0])),
            load=draw(st.sampled_from([0.0, 0.5, 1.0])),
            memory_mib=draw(st.sampled_from([1024, 8192])),
            domain=draw(st.sampled_from(["A", "B", "C", "D"])),
        ))
    return out


@settings(max_examples=120, deadline=None)
@given(_candidates(), st.integers(1, 4), st.binary(min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_placement_is_valid_deterministic_and_order_independent(cs, k, seed, rnd):
    inp = inputs(cs, seed=seed, replicas=k, memory_mib=2048, min_attestation=A.TPM_UNENDORSED)
    p = place(inp)
    shuffled = list(cs)
    rnd.shuffle(shuffled)
    again = place(dataclasses.replace(inp, candidates=tuple(shuffled)))
    assert again.chosen == p.chosen and again.explanation == p.explanation
    assert check_placement(p, inp) is None
    by_id = {c.node_id: c for c in cs}
    for v in p.explanation.chosen:
        c = by_id[v.node_id]
        assert c.attestation >= A.TPM_UNENDORSED and c.memory_mib >= 2048 and c.reputation > 0
    doms = [by_id[n].domain for n in p.chosen]
    if k >= 2:
        assert all(doms.count(d) < k for d in doms)
    assert sum(n for _, n in p.explanation.rejected_counts) == len(cs) - len(p.chosen)
    assert len(p.chosen) == len(set(p.chosen)) <= k
    assert p.complete == (len(p.chosen) == k) and (p.explanation.shortfall is None) == p.complete


def test_sticky_files_pull_a_task_to_their_holders_as_strongly_as_the_fetch_they_save():
    """Affinity: a peer that does not hold the task's sticky files must fetch them first, which
    adds to its wall time; among peers alike, the holders win; a far better peer still wins
    over a holder when the files are small."""
    alike = [cand(n) for n in ("a", "b", "c", "d")]
    for holders in ({"c"}, {"d", "b"}):
        got = place(inputs(alike, replicas=len(holders), duration_s=60.0,
                           holders=frozenset(holders), sticky_s=20.0)).chosen
        assert set(got) == holders, got
    small = [cand("holder", avail=FLAKY), cand("server")]
    got = place(inputs(small, replicas=1, duration_s=600.0, holders=frozenset({"holder"}),
                       sticky_s=0.1)).chosen
    assert got == ("server",)
    p = place(inputs(alike, replicas=1, duration_s=60.0, holders=frozenset({"c"}),
                     sticky_s=20.0))
    assert check_placement(p, inputs(alike, replicas=1, duration_s=60.0,
                                     holders=frozenset({"c"}), sticky_s=20.0)) is None
    with pytest.raises(ValueError, match="fetch time"):
        TaskNeeds(duration_s=1.0, sticky_s=float("nan"))

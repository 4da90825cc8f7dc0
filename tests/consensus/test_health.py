"""Committee health: the pure verdict, and the replica's observations under a real stall."""

from collections.abc import Callable
from typing import Any

from consensus.health import Health, Observation, Verdict, committee_health, worst
from consensus.statemachine import kv_op
from testnet.pbft_sim.bus import Bus


def obs(**kw):
    base = dict(members=4, quorum=3, reachable=4, waiting_s=None, view_changes_in_a_row=0,
                view_changing=False)
    base.update(kw)
    return Observation(**base)


def test_idle_or_committing_committee_is_ok():
    assert committee_health(obs()) == Verdict(Health.OK, "")
    assert committee_health(obs(waiting_s=1.0)).health is Health.OK
    assert committee_health(obs(members=1, quorum=1, reachable=1)).health is Health.OK


def test_waiting_long_is_degraded_then_stalled():
    v = committee_health(obs(waiting_s=6.0))
    assert v.health is Health.DEGRADED and "6 s" in v.reason
    v = committee_health(obs(waiting_s=25.0, view_changes_in_a_row=4, view_changing=True))
    assert v.health is Health.STALLED
    assert "nothing committed for 25 s" in v.reason and "4 view changes in a row" in v.reason


def test_view_changes_in_a_row_degrade():
    v = committee_health(obs(waiting_s=2.0, view_changes_in_a_row=2, view_changing=True))
    assert v.health is Health.DEGRADED and "2 view changes in a row" in v.reason


def test_no_quorum_reachable():
    v = committee_health(obs(reachable=1, waiting_s=0.5))
    assert v.health is Health.STALLED
    assert v.reason == "only 1 of 4 members reachable, a quorum is 3"
    idle = committee_health(obs(reachable=2))  # nothing waits, but nothing could commit
    assert idle.health is Health.STALLED and "only 2 of 4" in idle.reason
    one_down = committee_health(obs(reachable=3))
    assert one_down.health is Health.DEGRADED and "1 of 4 members unreachable" in one_down.reason


def test_worst_names_every_unhealthy_committee():
    assert worst([("shard0", Verdict(Health.OK, ""))]) == (Health.OK, "")
    h, why = worst([("shard0", Verdict(Health.DEGRADED, "a")), ("shard1", Verdict(Health.OK, "")),
                    ("directory", Verdict(Health.STALLED, "b"))])
    assert h is Health.STALLED and why == "shard0: a; directory: b"


def test_replica_reports_a_stall_when_the_majority_is_gone():
    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    survivor = bus.cfg.committee[1]
    assert committee_health(bus.replica(1).observe(4)).health is Health.OK
    bus.drop = lambda src, dst, env: survivor not in (src, dst) or \
        (src != survivor and src in bus.cfg.committee)  # replicas 0, 2, 3 are gone
    bus.submit(client, kv_op("put", "k", b"w"))
    verdicts = []
    for _ in range(120):
        bus.tick(0.25)
        bus.run()
        verdicts.append(committee_health(bus.replica(1).observe(4)))
    assert client.current is not None  # nothing committed
    assert verdicts[-1].health is Health.STALLED
    assert "view changes in a row" in verdicts[-1].reason
    assert any(v.health is Health.DEGRADED for v in verdicts)
    assert committee_health(bus.replica(1).observe(1)).reason.startswith("only 1 of 4")


def leave_two_behind(watch: Callable[[bytes, bytes, Any], None],
                     settle_ticks: int) -> tuple[Bus, Any, set[bytes]]:
    """Seven replicas, of which two (5 and 6) hear nothing for 10 s and ask for view 1 alone;
    then the cut heals and they stay left behind (the tests below). ``watch`` sees every
    message delivered. The client's put reaches the two by its retry, nothing else does."""
    bus = Bus(7, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    client_pk = next(iter(bus.clients))
    bus.submit(client, kv_op("put", "k", b"v"))
    bus.run()
    behind = set(bus.cfg.committee[5:])
    cut = [True]

    def drop(src: bytes, dst: bytes, env: Any) -> bool:
        watch(src, dst, env)
        return cut[0] and ((dst in behind and src in bus.cfg.committee) or dst == client_pk)
    bus.drop = drop
    bus.submit(client, kv_op("put", "k", b"w"))
    run_for(bus, 40)
    cut[0] = False
    run_for(bus, settle_ticks)
    assert all(bus.replica(i).view_changing and bus.replica(i).view == 1 for i in (5, 6))
    return bus, client, behind


def run_for(bus: Bus, ticks: int) -> None:
    for _ in range(ticks):
        bus.tick(0.25)
        bus.run()


def test_a_replica_left_behind_in_a_view_change_is_degraded_not_stalled():
    """Two of seven replicas hear nothing for a while and ask for view 1; two are fewer than
    f+1, so the other five (a quorum) stay in view 0. PBFT cannot take the two back, but the
    committee commits without them and they follow its commits: their health says that
    (degraded, and why), not ``stalled`` as if nothing could commit. It did say stalled: at 30
    daemons on slow lines, five members stuck so after a slow new view held the testnet back."""
    # 40 s after the cut heals: past the 20 s after which work waiting reads as stalled
    bus, client, behind = leave_two_behind(lambda src, dst, env: None, 160)
    assert all(bus.replica(i).view == 0 and not bus.replica(i).view_changing for i in range(5))
    for i in (5, 6):  # why, for the operator (``status --json``, the log)
        assert bus.replica(i).view_change_causes == {"timeout": 1}
        assert bus.replica(i).last_view_change.startswith(
            "view 1: timeout: no execution for 1.2 s (timeout 1.0 s, pace")
    assert bus.replica(0).view_change_causes == {}
    assert client.current is None  # the five committed it (the client heard them)
    for i in (5, 6):
        r = bus.replica(i)
        assert r.view_changing and r.view == 1  # still left behind ...
        assert r.last_executed == bus.replica(0).last_executed  # ... but following the commits
        v = committee_health(r.observe(7))
        assert v.health is Health.DEGRADED, v
        assert v.reason == "left behind asking for view 1: 5 of 7 members carry on in view 0" \
            " (it follows their commits)"
    assert committee_health(bus.replica(0).observe(7)).health is Health.OK


def test_a_member_answers_a_stuck_peers_status_with_back_off():
    """Every member answered every status with commit proofs (and in-flight batches) for all
    the peer lacked, every status interval: at 19 members on sub-Mbit lines a member behind
    got each proof from 18 members, over and over, and the answers filled the uplinks. Now
    one peer's status is answered at most every two status intervals while it progresses,
    and with a doubling wait while it does not."""
    from consensus.actions import Send
    from protocol.messages.pbft import CommitProof, Status

    bus = Bus(4, view_change_timeout=1.0, status_interval=0.25)
    client = bus.add_client()
    for i in range(3):
        bus.submit(client, kv_op("put", f"k{i}", b"v"))
        bus.run()
    r0, peer = bus.replica(0), bus.cfg.committee[3]
    assert r0.last_executed == 3
    signer = bus.signer(peer)
    answered = []
    for step in range(80):  # 20 s of statuses every 0.25 s from a peer stuck at 0
        now = 1.0 + step * 0.25
        raw = signer.seal(Status(bus.cfg.shard, bus.cfg.epoch, 0, False, 0, 0), now)
        out = r0.receive(bus.verifier.open(raw), now)
        if any(isinstance(a, Send) and a.to == peer and
               isinstance(bus.verifier.open(a.data).body, CommitProof) for a in out):
            answered.append(now)
    assert answered[0] == 1.0  # the first at once
    gaps = [b - a for a, b in zip(answered, answered[1:])]
    assert gaps == sorted(gaps) and gaps[0] >= 0.5 and len(answered) <= 7, answered


def test_a_replica_left_behind_asks_ever_less_often_and_follows_when_work_comes():
    """Left behind (above), a replica's statuses can only fetch commits, and each one makes
    every member of the lower view answer. While nothing changes they go ever less often,
    doubling up to 16 resend intervals apart; health still reads ``left behind``; and the
    commits of new work still reach it. Before, it sent a status every interval for ever."""
    statuses: dict[bytes, int] = {}

    def watch(src: bytes, dst: bytes, env: Any) -> None:
        if env.type == "pbft.status":
            statuses[src] = statuses.get(src, 0) + 1
    bus, client, behind = leave_two_behind(watch, 160)
    statuses.clear()
    run_for(bus, 240)  # a minute with nothing to order
    left = bus.cfg.committee[5]
    # Every 0.25 s to 6 members would be 1,440 frames; the wait reaches 4 s.
    assert statuses[left] <= 6 * 18, statuses[left]
    assert sum(statuses.get(pk, 0) for pk in bus.cfg.committee[:5]) <= 5 * 2 * 18  # answers
    v = committee_health(bus.replica(5).observe(7))
    assert v.health is Health.DEGRADED and v.reason.startswith("left behind asking for view 1")
    target = bus.replica(0).last_executed + 1
    bus.submit(client, kv_op("put", "k", b"x"))  # work again: the five commit it, and the two
    # They follow once answered: members answer a peer that stood still with a doubling wait
    # of their own, up to the 30 s cap here (15-28 s).
    run_for(bus, 160)
    assert client.current is None
    assert all(bus.replica(i).last_executed == target for i in (0, 5, 6))


def test_members_past_our_view_are_sent_no_votes_of_it():
    """Left behind in view 1, two of seven drop view 0's pre-prepares and votes unread; the
    five carrying on in view 0 send them none, and votes reach them again once the committee
    has moved to their view or past it."""
    votes_to_behind = 0

    def watch(src: bytes, dst: bytes, env: Any) -> None:
        nonlocal votes_to_behind
        if dst in behind and env.type in ("pbft.prepare", "pbft.commit", "pbft.preprepare"):
            votes_to_behind += 1
    behind: set[bytes] = set()  # the two; ``watch`` runs during the set-up too
    bus, client, behind = leave_two_behind(watch, 40)
    votes_to_behind = 0
    for k in range(5):
        bus.submit(client, kv_op("put", f"k{k}", b"x"))
        run_for(bus, 8)
        assert client.current is None
    assert votes_to_behind == 0
    primary = bus.cfg.committee[0]  # silent: the others time out and join the two
    bus.drop = lambda src, dst, env: primary in (src, dst)
    bus.submit(client, kv_op("put", "after", b"y"))
    run_for(bus, 200)
    views = [(bus.replica(i).view, bus.replica(i).view_changing) for i in range(1, 7)]
    assert len(set(views)) == 1 and views[0][0] >= 1 and not views[0][1], views
    seen = 0

    def count(src: bytes, dst: bytes, env) -> bool:
        nonlocal seen
        if dst in behind and env.type in ("pbft.prepare", "pbft.commit"):
            seen += 1
        return primary in (src, dst)
    bus.drop = count
    bus.submit(client, kv_op("put", "later", b"z"))
    run_for(bus, 8)
    assert client.current is None and seen > 0

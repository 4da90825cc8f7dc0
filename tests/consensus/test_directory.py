"""The directory committee's state machine: joins with proof of work, leaves, epochs."""

import random

from consensus.committee import DIRECTORY_SHARD
from consensus.directory import DirectoryMachine, DirectoryParams
from consensus.pow import check_pow, solve_pow
from consensus.statemachine import ClientRequest, kv_op

PARAMS = DirectoryParams(network="testnet", difficulty=6, shards=2, byzantine_fraction=0.1,
                         target_failure=1e-3)
rng = random.Random(5)
FOUNDERS = tuple(rng.randbytes(32) for _ in range(4))


def req(who, *op):
    return ClientRequest(who, 1, kv_op(*op), b"")


def test_join_leave_and_advance_apply_at_the_next_epoch():
    d = DirectoryMachine(PARAMS, FOUNDERS)
    newbie = rng.randbytes(32)
    assert d.apply(req(newbie, "join", solve_pow("testnet", newbie, 6))) == b"ok"
    assert d.apply(req(FOUNDERS[0], "leave")) == b"ok"
    assert newbie not in d.members  # not before the epoch changes
    assert d.apply(req(newbie, "advance", 1)) == b"error: only members advance the epoch"
    assert d.apply(req(FOUNDERS[1], "advance", 5)) == b"stale"
    assert d.apply(req(FOUNDERS[1], "advance", 1)) == b"epoch 1"
    assert d.apply(req(FOUNDERS[2], "advance", 1)) == b"stale"  # the first one won
    assert newbie in d.members and FOUNDERS[0] not in d.members and d.epoch == 1


def test_proof_of_work_is_required():
    d = DirectoryMachine(PARAMS, FOUNDERS)
    newbie = rng.randbytes(32)
    nonce = solve_pow("testnet", newbie, 6)
    wrong = next(n for n in range(nonce + 1, nonce + 10_000)
                 if not check_pow("testnet", newbie, n, 6))
    assert d.apply(req(newbie, "join", wrong)).startswith(b"error: proof of work")
    assert d.apply(req(newbie, "join", nonce)) == b"ok"
    assert d.apply(req(newbie, "join", nonce)) == b"already"


def test_every_node_derives_the_same_epoch_config_and_snapshots_round_trip():
    a, b = DirectoryMachine(PARAMS, FOUNDERS), DirectoryMachine(PARAMS, FOUNDERS)
    joiners = [rng.randbytes(32) for _ in range(8)]
    ops = [req(j, "join", solve_pow("testnet", j, 6)) for j in joiners]
    ops.append(req(FOUNDERS[3], "advance", 1))
    for op in ops:
        assert a.apply(op) == b.apply(op)
    ca, cb = a.config(), b.config()
    assert ca == cb and ca.epoch == 1 and len(ca.members) == 12
    assert set(ca.committees) == {0, 1, DIRECTORY_SHARD}
    assert ca.randomness != DirectoryMachine(PARAMS, FOUNDERS).config().randomness
    c = DirectoryMachine(PARAMS)
    c.restore(a.snapshot())
    assert c.config() == ca and c.snapshot() == a.snapshot()


def test_garbage_operations_are_answered_not_fatal():
    d = DirectoryMachine(PARAMS, FOUNDERS)
    assert d.apply(ClientRequest(FOUNDERS[0], 1, b"\xc1", b"")).startswith(b"error")
    assert d.apply(req(FOUNDERS[0], "frobnicate")).startswith(b"error")
    assert d.apply(req(FOUNDERS[0], "join", "x")).startswith(b"error")


def test_directory_committee_orders_joins_and_epochs_identically():
    """The directory machine replicated by PBFT (simulated, lossy network): a node pays its
    proof of work and joins, a member advances the epoch, and every replica derives the same
    committees for the new epoch."""
    from testnet.pbft_sim.adapter import Cluster
    from testnet.pbft_sim.scenarios import SIM_CONFIG
    from testnet.sim import LinkFaults, Network, Simulation

    sim = Simulation(4, Network(LinkFaults(drop=0.1, duplicate=0.1, max_delay=0.05)))
    box: dict = {}
    cluster = Cluster(sim, 4, config=dict(SIM_CONFIG),
                      machine=lambda: DirectoryMachine(PARAMS, box["founders"]))
    box["founders"] = cluster.cfg.committee
    for i in range(4):
        cluster.add_replica(i)
    joiners = [cluster.add_client(1) for _ in range(3)]
    for j in joiners:  # each pays the proof of work on its own key
        j.make_op = lambda i, pk=j.pk: kv_op("join", solve_pow("testnet", pk, 6))
    assert sim.run_until(10, stop=cluster.all_clients_done)
    assert all(j.client.done[0].result == b"ok" for j in joiners)
    # A member asks for the next epoch, as a client with its own key.
    member = cluster.replicas["r1"]
    advance = cluster.add_client(1, start=sim.now, make_op=lambda i: kv_op("advance", 1),
                                 key=member.pk)
    assert sim.run_until(20, stop=lambda: advance.finished)
    assert advance.client.done[0].result == b"epoch 1"
    sim.run_for(1.0)
    configs = [r.replica.service.machine.config() for r in cluster.replicas.values()]
    assert all(cfg == configs[0] for cfg in configs)
    assert configs[0].epoch == 1 and set(j.pk for j in joiners) <= set(configs[0].members)
    assert len(configs[0].members) == 7


def grown(n: int) -> DirectoryMachine:
    """A directory at epoch 1 with the founders and ``n`` joiners."""
    d = DirectoryMachine(PARAMS, FOUNDERS)
    for j in [random.Random(100 + i).randbytes(32) for i in range(n)]:
        assert d.apply(req(j, "join", solve_pow("testnet", j, 6))) == b"ok"
    assert d.apply(req(FOUNDERS[0], "advance", 1)) == b"epoch 1"
    return d


def test_f_plus_one_of_the_directory_committee_evict_a_silent_member():
    d = grown(6)
    committee = d.directory_committee()
    f = (len(committee) - 1) // 3
    silent = next(m for m in d.members if m not in committee)
    outsider = next(m for m in d.members if m not in committee and m != silent)
    assert d.apply(req(outsider, "evict", silent, 1)).startswith(b"error: only the directory")
    assert d.apply(req(committee[0], "evict", silent, 0)) == b"stale"
    assert d.apply(req(committee[0], "evict", committee[0], 1)) == b"error: not another member"
    for voter in committee[:f]:
        assert d.apply(req(voter, "evict", silent, 1)) == b"ok"
    assert d.apply(req(committee[0], "evict", silent, 1)) == b"ok"  # one vote per member
    assert d.evicted() == set()  # f reports could all be Byzantine ones
    assert d.apply(req(committee[f], "evict", silent, 1)) == b"evicted at the next epoch"
    assert silent in d.members  # not before the epoch changes
    again = DirectoryMachine(PARAMS)
    again.restore(d.snapshot())
    assert again.evicted() == {silent} and again.snapshot() == d.snapshot()
    assert d.apply(req(committee[0], "advance", 2)) == b"epoch 2"
    assert silent not in d.members and d.evicted() == set()
    # It comes back: a join like anyone's, from the next epoch.
    assert d.apply(req(silent, "join", solve_pow("testnet", silent, 6))) == b"ok"
    assert d.apply(req(committee[0], "advance", 3)) == b"epoch 3" and silent in d.members


def test_evictions_never_shrink_the_network_below_one_committee():
    d = DirectoryMachine(PARAMS, FOUNDERS)  # exactly min_committee members
    committee = d.directory_committee()
    for voter in committee[1:]:
        d.apply(req(voter, "evict", committee[0], 0))
    assert d.evicted() == {committee[0]}
    assert d.apply(req(committee[1], "advance", 1)) == b"epoch 1"
    assert committee[0] in d.members


def test_snapshots_from_before_evictions_load():
    from protocol.canonical import packb, unpackb

    d = grown(2)
    old = packb(unpackb(d.snapshot())[:5], maps=False)
    again = DirectoryMachine(PARAMS)
    again.restore(old)
    assert again.config() == d.config() and again.evicting == {}

"""Per-node cost as the network grows: the real partial view, committees and churn, simulated.

Runs ``testnet.overlay_sim`` (the daemon's own ``daemon.p2p.overlay`` planner on every node,
committees drawn by ``consensus.committee``, churn from the availability trace generator) at
100, 1,000 and 10,000 nodes and prints one JSON line per size:

- connections per node: most at any step (committee links included), and most outside the
  node's committees (view + inbound + work); ``max_committee_links``: most committee peers a
  node keeps (a committee above ``consensus.mesh.MESH_ABOVE`` members: its mesh neighbours);
  ``max_non_seed`` / ``non_seed_over_64``: the most any node but a seed had, and how many of
  them passed 64 at some step; ``max_seats``: most committees a node sat on in one epoch;
- rounds for a change to reach every up node over the soft-state links (delta anti-entropy
  forwards news to all its partners each round), next to log2(N) as the baseline;
- idle bytes/s per node, computed from the real message sizes our code produces:
  anti-entropy summaries over the soft-state links only (``daemon.softstate.partners``:
  connections where either end holds the other in its view; each end that holds the other
  sends a summary every 30 s, an end held only by the other every 5 min), built by
  ``summary_objects`` for N writers of the registry and N of the link summaries, and the
  round that follows, run with the real ``start_round`` / ``reply_objects`` /
  ``absorb_reply`` against a peer that differs in the writes still in flight: the network's
  refreshes per second times the dissemination rounds times ``ROUND_S``, at least one),
  capability-record refreshes (the real record encoding, every ``refresh_period(N)`` per
  node, crossing each soft-state link once, and the acknowledgement each delta gets) and RTT
  pings. Pings go only to links nothing else times (``daemon.p2p.rtt``): an acknowledged
  delta is a round-trip sample, so an overlay link is pinged only when no delta crossed it
  for ``PROBE_EVERY`` (a Poisson chance at the network's rewrite rate); a committee link
  that is not also an overlay link carries no acknowledged deltas and is pinged every
  ``PROBE_EVERY``. Idle link summaries cost nothing
  (an unchanged summary is not rewritten); ``link_summaries_busy`` is the worst case of a busy
  network, every node rewriting its full summary at ``min_interval(N)``, apart from the idle
  total. ``sizes.digest`` is the full digest (``crdt.digests``), still sent when most buckets
  differ (a peer back after a long absence).
- ``epoch_bytes_per_s``: what epochs cost a node, apart, since they come with churn (a member
  gone silent is evicted, one back joins again, each at the next epoch): epochs advance at the
  churn's rate, at most one per ``epoch_plan.epoch_min_s(N)``. An upper bound: every flip of
  the trace counts as a change (eviction waits for the genesis' ``evict_after_s``, a day by
  default). Per epoch a node takes in the
  new notice once and serves it about once (``epoch_sync``), as the real sealed
  ``EpochDelta``: the directory's state with N members who each joined once, five more
  joining in the epoch, given as its difference from the state before
  (``consensus.statedelta``), and the proof of 2f+1 signed checkpoints of the directory
  committee; ``sizes.notice`` is the whole notice (the first one of a chain), next to the
  frame cap it must fit. It tells and is told by each connection how far it
  is (``EpochHave``), and for each committee seat it leaves or takes, sends or receives the
  shard's ``HandoffNotice`` (its proof) ``handoff_plan.FANOUT`` times (it was every member of
  the other committee: 31 KB/s a node at 1,000 nodes). ``handoff_peers_per_seat``: the old
  members a new member hears the hand-over from, each a connection of its own unless they
  share a mesh. ``closing_rounds``: on each seat, the old committee's closing (every
  member's ``EndEpoch`` to every other, routed over the mesh's shortest paths; the batch that
  orders it; every member's checkpoint), as the real sealed messages times the copies a
  member handles (``committee_round_bytes``: all-to-all, about one of each broadcast; over
  the real mesh of a larger committee, each member forwards each broadcast to its other
  neighbours, ~21 copies sent plus received; ``bench_mesh.py`` measures 230 KB sent per
  write per member at 48 members, this counts 231).
- ``tick_bytes_per_s``: a shard that keeps ended jobs orders one ledger tick round an hour
  (``ledger.shard.LEDGER_TICK_IDLE_S``): one batch on each of a node's shard seats (an upper
  bound: a shard with no job orders nothing). ``idle_whole_bytes_per_s``: soft state,
  epochs and ticks together.

Usage: ``python scripts/sim_scale.py [--sizes 100,1000,10000] [--seed 1] [--duration 600]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from crdt import buckets  # noqa: E402
from crdt.antientropy import AntiEntropyConfig  # noqa: E402
from crdt.digests import digest_messages  # noqa: E402
from crdt.values import DEFAULT_LIMITS  # noqa: E402
from daemon.links.summary import LinkEntry, LinkSummary, min_interval, to_wire  # noqa: E402
from daemon.softstate.plan import refresh_period  # noqa: E402
from protocol.messages.crdt import (CrdtAck, CrdtDelta, CrdtSummary,  # noqa: E402
                                    CrdtSummaryReply, CrdtSummaryWant)
from crdt import CrdtReplica  # noqa: E402
from crdt.auth import DotSigner  # noqa: E402
from daemon.softstate.service import CAPS, SCHEMA  # noqa: E402
from daemon.softstate.links import LINKS  # noqa: E402
from protocol.envelope import seal, seal_channel  # noqa: E402
from crdt.dots import CausalContext  # noqa: E402
from daemon.p2p.config import P2PConfig  # noqa: E402
from daemon.capabilities import build_record, record_to_wire  # noqa: E402
from daemon.p2p.rtt import PROBE_EVERY  # noqa: E402
from daemon.sched import AvailabilityHistory, summarize  # noqa: E402
from daemon.softstate.service import ENVELOPE_MARGIN  # noqa: E402
from protocol.canonical import packb  # noqa: E402
from protocol.identity import NodeIdentity  # noqa: E402
from testnet.overlay_sim import OverlaySim, SimConfig  # noqa: E402
from consensus.committee import DIRECTORY_SHARD  # noqa: E402
from consensus.directory import DirectoryMachine, DirectoryParams  # noqa: E402
from consensus.quorum import quorum_size  # noqa: E402
from consensus.statemachine import ClientRequest, Service  # noqa: E402
from daemon.committees.epoch_plan import epoch_min_s  # noqa: E402
from daemon.committees.handoff_plan import FANOUT  # noqa: E402
from protocol.messages.pbft import (Checkpoint, Commit, EndEpoch, EpochDelta,  # noqa: E402
                                    EpochFetch, EpochHave, EpochNotice, HandoffNotice, Prepare,
                                    PrePrepareRefs)
from consensus.statedelta import make_delta  # noqa: E402
from consensus.mesh import mesh_for  # noqa: E402
from daemon.ledger.shard import LEDGER_TICK_IDLE_S  # noqa: E402

NODE_ID_CHARS = len(NodeIdentity(bytes(32)).node_id)
PING_BYTES = 4 * 32 + 4 * 40  # two round trips of 32 bytes, with yamux/noise framing


_IDENTITY = NodeIdentity(bytes(range(32)))
_SEQ, _TS = 1_000_000, 1_700_000_000_000
"""Every message is sized with the same envelope number and time (a node some days into its
run): sized by one sealer in turn, its numbers grew with each message, so a size, and every
figure, depended on what the run had sized before."""
ROUND_S = 0.3
"""One dissemination round in real time: a 0.1 s anti-entropy tick plus a one-way delay."""


def _writers(n: int) -> dict[str, int]:
    return {f"{'x' * (NODE_ID_CHARS - 6)}{i:06d}": 3 for i in range(n)}


def _size(msg: object) -> int:
    """The message as it goes on the wire: sealed in the real signed envelope."""
    return len(seal(_IDENTITY, "sim", msg, context=1, seq=_SEQ, timestamp_ms=_TS))


def _soft_size(msg: object) -> int:
    """A soft-state message as it goes on the wire: the real unsigned channel frame
    (``protocol.envelope.seal_channel``; the stream's Noise session says who wrote it)."""
    return len(seal_channel("sim", msg, context=1, seq=_SEQ, timestamp_ms=_TS))


def summary_exchange(writers: int, differing: int) -> dict[str, int]:
    """One summary and the round it starts, between replicas of ``writers`` record writers
    and as many link-summary writers, the sender ahead by ``differing`` writes: the real
    messages, their count and bytes (envelopes included)."""
    vv = _writers(writers)
    ours = {"caps": CausalContext(vv), "links": CausalContext(vv)}
    theirs = {"caps": CausalContext(vv), "links": CausalContext(vv)}
    step = max(1, writers // max(1, differing))
    for w in sorted(vv)[::step][:differing]:
        theirs["caps"].add(w, vv[w] + 1)
    summary = CrdtSummary(1, 1, 1, buckets.summary_objects(theirs))
    msgs, nbytes = 1, _soft_size(summary)
    limits = DEFAULT_LIMITS
    r = buckets.start_round(1, ours, summary.objects, limits)
    while r is not None and not r.done():
        for objs in r.wants():
            want = CrdtSummaryWant(r.id, objs)
            msgs, nbytes = msgs + 1, nbytes + _soft_size(want)
            for table, robjs in buckets.reply_objects(
                    theirs, buckets.decode_wants(want.objects, theirs, limits), 400_000):
                reply = CrdtSummaryReply(r.id, table, robjs)
                msgs, nbytes = msgs + 1, nbytes + _soft_size(reply)
                buckets.absorb_reply(r, ours, reply.replicas, reply.objects, limits)
    assert r is not None and r.theirs["caps"] == theirs["caps"], "the round must rebuild it"
    return {"messages": msgs, "bytes": nbytes, "summary_bytes": _soft_size(summary),
            "differing": differing}


def digest_sizes(writers: int) -> dict[str, int]:
    """The real digest messages for ``writers`` record writers (one dot each, typical): their
    total bytes, how many parts, and the largest, next to the frame cap they must fit."""
    ctx = CausalContext({f"{'x' * (NODE_ID_CHARS - 6)}{i:06d}": 3 for i in range(writers)})
    msgs = digest_messages({"caps": ctx}, session=1, applied_session=1, applied_seq=1,
                           max_bytes=P2PConfig().max_frame - ENVELOPE_MARGIN)
    sizes = [_soft_size(m) for m in msgs]
    return {"total": sum(sizes), "parts": len(sizes), "largest": max(sizes),
            "frame_cap": P2PConfig().max_frame}


def link_summary_bytes() -> int:
    """A full link summary (8 peers) rewritten, as the real replica sends it, sealed."""
    node = _IDENTITY.node_id
    entries = tuple(LinkEntry(f"{node[:-2]}{i:02d}", 1e6, 0.3, 0.05, 40, 10.0, True)
                    for i in range(8))
    return _delta_bytes(LINKS, to_wire(LinkSummary(node, 1_700_000_000_000, entries)))


def _delta_bytes(name: str, value: object) -> int:
    """One owner-keyed write of ``value`` into object ``name``: the delta interval a real
    signed replica sends a peer for it, sealed."""
    node = _IDENTITY.node_id
    replica = CrdtReplica(node, SCHEMA, session=5, signer=DotSigner(_IDENTITY, "sim"))
    replica.update(name, lambda m, w: m.p_set(w, node, value), 1_700_000_000_000)
    replica.books.peer("peer").connected = True
    return sum(_soft_size(m) for _, m in replica.tick(1_700_000_000_100)
               if isinstance(m, CrdtDelta))


def record_bytes() -> int:
    """One capability record rewrite as a replica sends it to a peer: the delta interval the
    real signed replica builds, sealed (one record a message: at 10,000 nodes the network
    rewrites one unchanged record every 2 s, so a 0.1 s tick rarely batches two)."""
    node = _IDENTITY.node_id
    rec = build_record(node, slots=4, memory_mib=8192, runtimes=("wasm32-wasi",
                       "wasm32-wasi@0123456789abcdef"), listen=(f"/ip4/203.0.113.7/tcp/7400/p2p/{node}",),
                       attestation=None, availability=summarize(AvailabilityHistory(), 1e9).to_wire(),
                       load_permille=250, domain=node, now_ms=1_700_000_000_000,
                       generation=1_700_000_000_000)
    return _delta_bytes(CAPS, record_to_wire(rec))


def ack_bytes() -> int:
    """The acknowledgement a delta gets, sealed."""
    return _soft_size(CrdtAck(1_700_000_000_000, 1_000_000))


def idle_traffic(nodes: int, links: SoftLinks,
                 rounds: int) -> tuple[dict[str, float], dict[str, int]]:
    """Bytes/s a node sends plus receives when nothing happens but soft-state upkeep, and the
    summary exchange it is computed from."""
    cfg = AntiEntropyConfig()
    period = refresh_period(nodes)
    in_flight = max(1, math.ceil(nodes / period * rounds * ROUND_S))
    exchange = summary_exchange(nodes, in_flight)
    digests = exchange["bytes"] * (links.active_ends / (cfg.digest_every_ms / 1000)
                                   + links.passive_ends / (cfg.passive_digest_every_ms / 1000))
    overlay_links, kept = links.links, links.kept_only
    rewrites = nodes / period  # each record rewrite crosses each overlay link once
    refresh = rewrites * record_bytes() * overlay_links
    acks = rewrites * ack_bytes() * overlay_links
    untimed = math.exp(-rewrites * PROBE_EVERY)  # no delta crossed a link for PROBE_EVERY
    pings = (overlay_links * untimed + kept) * PING_BYTES / PROBE_EVERY
    busy_links = nodes * link_summary_bytes() * overlay_links / min_interval(nodes)
    return ({"digests": round(digests), "record_refresh": round(refresh),
             "record_acks": round(acks), "pings": round(pings),
             "link_summaries": 0, "total": round(digests + refresh + acks + pings),
             "refresh_period_s": period, "link_summaries_busy": round(busy_links),
             "link_min_interval_s": min_interval(nodes)}, exchange)


def epoch_messages(nodes: int, committee: int) -> dict[str, int]:
    """The real sealed epoch messages of a network of ``nodes`` members whose committees have
    ``committee`` members: the notice (the directory's final state, every member having joined
    once, and its proof), the handoff notice, and the two small sync messages."""
    params = DirectoryParams("sim", 0, 1)
    keys = [NodeIdentity(i.to_bytes(32, "big")).public_key for i in range(1, nodes + 1)]
    service = Service(DirectoryMachine(params, tuple(keys[:4])))
    for k in keys[4:-5]:
        service.execute(ClientRequest(k, 1, packb(["join", 0]), b""))
    service.execute(ClientRequest(keys[0], 1, packb(["advance", 1]), b""))
    before = service.snapshot()
    for k in keys[-5:]:  # the next epoch: five join
        service.execute(ClientRequest(k, 1, packb(["join", 0]), b""))
    service.execute(ClientRequest(keys[0], 2, packb(["advance", 2]), b""))
    proof = tuple(seal(_IDENTITY, "sim", Checkpoint(DIRECTORY_SHARD, 0, 10, bytes(32)),
                       context=1, seq=_SEQ + k, timestamp_ms=_TS)
                  for k in range(quorum_size(committee)))
    state = service.snapshot()
    delta = EpochDelta(DIRECTORY_SHARD, 1, 10, bytes(32), proof, bytes(32),
                       make_delta(before, state))
    return {"notice": _size(EpochNotice(DIRECTORY_SHARD, 0, 10, bytes(32), proof, state)),
            "notice_delta": _size(delta), "frame_cap": P2PConfig().max_frame,
            "notice_state": len(state), "proof": sum(len(p) for p in proof),
            "handoff": _size(HandoffNotice(0, 0, 10, bytes(32), proof)),
            "have": _size(EpochHave(DIRECTORY_SHARD, 1)), "fetch": _size(EpochFetch(DIRECTORY_SHARD, 1))}


def committee_copies(n: int) -> tuple[float, float]:
    """(copies of one broadcast, copies of one member-to-member message) that a member of an
    ``n``-member committee sends plus receives, on average: all-to-all, the origin sends n-1
    and each other member takes one; over the real mesh of a larger committee
    (``consensus.mesh``) every member forwards each broadcast once to its neighbours but the
    one it came from (the origin to all of them), and a message to one member crosses the
    shortest path's hops (``daemon.committees.relay``: routed), each a send and a receive."""
    keys = [NodeIdentity(i.to_bytes(32, "big")).public_key for i in range(1, n + 1)]
    mesh = mesh_for(keys, 1, 0)
    if mesh is None:
        return 2 * (n - 1) / n, 2.0
    sends = sum(len(links) - 1 for links in mesh.links) + 1
    sample = range(0, n, max(1, n // 32))
    hops = sum(sum(mesh.hops(i).values()) / (n - 1) for i in sample) / len(sample)
    return 2 * sends / n, 2 * hops


def committee_rounds(n: int) -> dict[str, float]:
    """Bytes a member of an ``n``-member committee sends plus receives for one ordered batch
    (a pre-prepare by reference, n-1 prepares, n commits: a ledger tick round), and for an
    epoch's closing (each member's ``EndEpoch`` to every other member, the batch that orders
    one, and the checkpoint every member then broadcasts): the real sealed messages."""
    broadcast, direct = committee_copies(n)
    ts = 1_700_000_000_000
    vote, digest = bytes(64), bytes(32)
    pp = _size(PrePrepareRefs(1, ts, ts, vote, 0, 1, 0, 10, digest, (digest,), vote))
    prepare = _size(Prepare(0, 1, 0, 10, digest, vote))
    commit = _size(Commit(0, 1, 0, 10, digest, vote))
    checkpoint = _size(Checkpoint(0, 1, 10, digest))
    end = _size(EndEpoch(0, 1))
    batch = broadcast * (pp + (n - 1) * prepare + n * commit)
    closing = batch + broadcast * n * checkpoint + direct * (n - 1) * end
    return {"batch": round(batch), "closing": round(closing),
            "broadcast_copies": round(broadcast, 1), "route_hops": round(direct / 2, 2)}


def epoch_traffic(nodes: int, committee: int, shards: int, connections: float,
                  churn_per_s: float, rounds: dict[str, float]) -> dict[str, float]:
    """Bytes/s a node sends plus receives for epochs (see the module docstring); ``rounds``:
    ``committee_rounds(committee)``."""
    sizes = epoch_messages(nodes, committee)
    per_s = min(churn_per_s, 1 / epoch_min_s(nodes, committee))
    seats = (shards + 1) * committee / nodes  # a node's mean seats (a directory's too)
    parts = {"notices": 2 * sizes["notice_delta"] + 2 * sizes["fetch"],
             "announcements": 2 * connections * sizes["have"],
             "handoffs": 2 * seats * min(FANOUT, committee) * sizes["handoff"],
             "closing_rounds": seats * rounds["closing"]}
    out = {k: round(v * per_s) for k, v in parts.items()}
    out["total"] = sum(out.values())
    return {**out, "epochs_per_hour": round(per_s * 3600, 1),
            "epoch_min_s": epoch_min_s(nodes, committee), "mean_seats": round(seats, 2),
            "handoff_peers_per_seat": min(FANOUT, committee), "sizes": sizes,
            "committee_round_bytes": rounds}


def tick_traffic(nodes: int, committee: int, shards: int,
                 rounds: dict[str, float]) -> dict[str, float]:
    """Bytes/s a node sends plus receives for its shards' idle ledger ticks: a shard that
    keeps ended jobs orders one tick round per ``LEDGER_TICK_IDLE_S`` (an upper bound: a
    shard with no job orders nothing), on each of a node's mean shard seats; ``rounds``:
    ``committee_rounds(committee)``."""
    seats = shards * committee / nodes
    return {"total": round(seats * rounds["batch"] / LEDGER_TICK_IDLE_S),
            "rounds_per_hour": round(3600 / LEDGER_TICK_IDLE_S, 2), "shard_seats": round(seats, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    args = ap.parse_args()
    for n in [int(x) for x in args.sizes.split(",")]:
        started = time.process_time()
        step = 5.0 if n <= 1000 else 15.0
        sim = OverlaySim(SimConfig(nodes=n, seed=args.seed, duration_s=args.duration, step_s=step))
        r = sim.run()
        links = soft_links(sim)
        traffic, exchange = idle_traffic(n, links, max(r.dissemination_rounds))
        digest = digest_sizes(n)
        rounds = committee_rounds(r.committee_size)
        epochs = epoch_traffic(n, r.committee_size, r.shards, r.mean_connections,
                               r.churn_events / args.duration, rounds)
        ticks = tick_traffic(n, r.committee_size, r.shards, rounds)
        whole = traffic["total"] + epochs["total"] + ticks["total"]
        print(json.dumps({
            "nodes": n, "seed": args.seed, "simulated_s": args.duration,
            "up_mean": round(r.up_mean, 1), "churn_events": r.churn_events,
            "peer_exchanges": r.exchanges,
            "committee_size": r.committee_size, "shards": r.shards,
            "connections": {"max": r.max_connections, "p99": r.p99_connections,
                            "mean": round(r.mean_connections, 1),
                            "max_outside_committees": r.max_overlay_connections,
                            "p99_outside_committees": r.p99_overlay_connections,
                            "seed_max": r.seeds_max_connections,
                            "max_committee_links": r.max_committee_links,
                            "max_non_seed": r.max_non_seed_connections,
                            "non_seed_over_64": r.non_seed_over_64,
                            "max_seats": r.max_seats},
            "dissemination_rounds": {"max": max(r.dissemination_rounds),
                                     "samples": r.dissemination_rounds,
                                     "baseline_log2_n": round(math.log2(n), 1)},
            "reached_fraction_min": r.reached_fraction_min,
            "idle_bytes_per_s": traffic,
            "epoch_bytes_per_s": epochs,
            "tick_bytes_per_s": ticks,
            "idle_whole_bytes_per_s": whole,
            "soft_state_links": {k: round(v, 1) for k, v in vars(links).items()},
            "sizes": {"record": record_bytes(), "link_summary": link_summary_bytes(),
                      "summary_exchange": exchange, "digest": digest},
            "targets": {"connections": 64, "idle_bytes_per_s": 5000},
            "met": {"connections": r.max_connections <= 64,
                    "connections_non_seed": r.max_non_seed_connections <= 64,
                    "idle_bytes_per_s": traffic["total"] <= 5000,
                    "idle_with_epochs": traffic["total"] + epochs["total"] <= 5000,
                    "idle_whole": whole <= 5000,
                    "dissemination_log_n": max(r.dissemination_rounds) <= math.log2(n),
                    "digest_parts_under_frame_cap": digest["largest"] <= digest["frame_cap"],
                    "epoch_delta_under_frame_cap":
                        epochs["sizes"]["notice_delta"] <= epochs["sizes"]["frame_cap"]},
            "cpu_s": round(time.process_time() - started, 1),
        }), flush=True)


@dataclass(frozen=True)
class SoftLinks:
    """Per up node, on average: its soft-state links (``daemon.softstate.partners``), the ends
    of those links that send periodic summaries (both ends counted: a node sends some and
    receives the others), the ends that send only the passive ones, and its committee
    connections that are no soft-state link (only pings time those)."""

    links: float
    active_ends: float
    passive_ends: float
    kept_only: float


def soft_links(sim: OverlaySim) -> SoftLinks:
    views = sim.views()
    up = [i for i in range(sim.cfg.nodes) if sim.up[i]]
    links = active = kept_only = 0
    for i in up:
        mine = sim.soft_links(i, views)
        links += len(mine)
        active += sum(int(sim.ids[j] in views[i]) + int(sim.ids[i] in views[j]) for j in mine)
        kept_only += len((sim.committee_members[i] & sim.conns[i]) - mine.keys())
    n = max(1, len(up))
    return SoftLinks(links / n, active / n, (2 * links - active) / n, kept_only / n)


if __name__ == "__main__":
    main()

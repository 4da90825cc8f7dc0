"""Blob exchange between peers: serve byte ranges by hash, fetch whole blobs and verify them.

Protocol ``/novacron/blob/1`` (request/response over a fresh libp2p stream): the request is a
signed ``BlobRequest`` envelope, the answer a signed ``BlobChunk`` or ``BlobMissing``. A
fetcher asks one peer after another in chunks of ``CHUNK`` bytes; a peer whose bytes do not
hash to what was asked for is reported as faulty and the next peer is tried.

Fetches of one blob that run at once (two replicas of a task offering the same output, from
a fibre line and from a 1 Mbit/s one) end together: the first to store the blob cancels the
others, which return it from the store. So the blob costs the time of its fastest source, and
a replica's hand-over on a slow line is not held until its own copy has crawled across.

A fetch whose every source only timed out (or could not open a stream: py-libp2p's own 10 s
protocol negotiation times out the same way) goes round them again with twice the wait, up to
``FETCH_ROUNDS`` rounds (10, 20, 40 s by default), as BOINC retries a download before it gives
up on the task: a timeout on a full line says "later", not "never".
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import trio

from daemon.blobs.store import BlobStore
from daemon.errors import DaemonError
from daemon.links import LinkTable
from daemon.p2p.errors import P2PError
from daemon.p2p.host import P2PHost
from protocol.envelope import EnvelopeOpener, EnvelopeSealer
from protocol.errors import MalformedMessage, RemoteProtocolError
from protocol.identity import short_node_id
from protocol.messages.blobs import BlobChunk, BlobMissing, BlobRequest

log = logging.getLogger("novacron.blobs")

PROTOCOL = "/novacron/blob/1"
CHUNK = 256 * 1024
PROBE_SMALL = 1024
"""The small half of a link probe: mostly the request's fixed cost (``probe``)."""
MEASURE_PROBES = 2
"""Probes one ``measure`` may spend: with one earlier transfer, enough for ``LinkTable.fit``."""
FETCH_ROUNDS = 3
"""Rounds over a blob's sources while they only time out, each waiting twice as long. On a
30-daemon planet testnet the submitter (a 1.1 Mbit/s uplink) served a task's 46 KB module to
two dozen workers at once; the last answers came after 10 s, each such replica crashed with
"could not fetch", was placed again and fetched again: two of 100 tasks ran out of replicas
that way, and most others lost one or two."""


class BlobUnavailable(DaemonError):
    """No peer could provide the blob; the message says who was asked and what went wrong."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class BlobService:
    def __init__(self, store: BlobStore, host: P2PHost, sealer: EnvelopeSealer,
                 opener: EnvelopeOpener) -> None:
        self.store = store
        self.host = host
        self.sealer = sealer
        self.opener = opener
        self.served = 0
        self.fetched = 0
        self.probes = 0
        self._inflight: dict[bytes, set[trio.CancelScope]] = {}
        """Fetches running now, by blob: the first to finish cancels the rest."""
        self.retried = 0
        """Rounds of a fetch begun again because every source timed out (``FETCH_ROUNDS``)."""
        self.overtaken = 0
        """Fetches cancelled because another fetch of the same blob finished first."""
        self._measuring: set[str] = set()
        """Peers a ``measure`` is probing now (one at a time per peer)."""
        self.links = LinkTable()
        """Throughput and round trip to the peers we fetch from, learned from every chunk."""
        host.handle_request(PROTOCOL, self._serve)

    async def _serve(self, peer: str, frame: bytes) -> bytes:
        env = self.opener.open(frame, now_ms=_now_ms())
        req = env.body
        if not isinstance(req, BlobRequest):
            raise MalformedMessage(f"expected blob.request, got {env.type}")
        got = self.store.read(req.blob, req.offset, min(req.length, CHUNK))
        if got is None:
            return self.sealer.seal(BlobMissing(req.blob), _now_ms())
        data, total = got
        self.served += 1
        return self.sealer.seal(BlobChunk(req.blob, req.offset, total, data), _now_ms())

    async def fetch(self, digest: bytes, peers: Sequence[str], max_size: int,
                    timeout: float = 10.0) -> bytes:
        """The blob's bytes, from the local store or the first peer that has it right; if
        another fetch of the same blob finishes first, from the store at once."""
        local = self.store.get(digest)
        if local is not None:
            return local
        group = self._inflight.setdefault(digest, set())
        with trio.CancelScope() as scope:
            group.add(scope)
            try:
                data = await self._fetch_any(digest, peers, max_size, timeout)
            finally:
                group.discard(scope)
                if not group:
                    self._inflight.pop(digest, None)
            for other in group:  # we stored it: the slower fetches of it can stop
                other.cancel()
            return data
        self.overtaken += 1
        local = self.store.get(digest)
        if local is None:
            raise BlobUnavailable(f"blob {digest.hex()[:16]}: a faster fetch of it finished, "
                                  "but it is not in the store")
        return local

    async def _fetch_any(self, digest: bytes, peers: Sequence[str], max_size: int,
                         timeout: float) -> bytes:
        problems: list[str] = []
        for attempt in range(FETCH_ROUNDS):
            problems, timed_out = [], False
            for peer in peers:
                if peer == self.host.node_id:
                    continue
                try:
                    data = await self._fetch_from(peer, digest, max_size, timeout)
                except (P2PError, RemoteProtocolError, _Bad) as err:
                    if isinstance(err, (RemoteProtocolError, _Bad)):
                        self.host.report_fault(peer, getattr(err, "reason", "bad_blob"))
                    # py-libp2p gives a new stream's protocol negotiation 10 s of its own: on
                    # a full line that fails as "open", and means what a timeout means
                    timed_out |= getattr(err, "reason", "") in ("timeout", "open")
                    problems.append(f"{short_node_id(peer)}: {err}")
                    continue
                if data is None:
                    problems.append(f"{short_node_id(peer)}: does not have it")
                    continue
                self.store.put(data)
                self.fetched += 1
                return data
            if not timed_out:
                break
            if attempt + 1 < FETCH_ROUNDS:
                self.retried += 1
                timeout *= 2
                log.info("blob %s: sources timed out; asking again, waiting up to %.0f s",
                         digest.hex()[:16], timeout)
        raise BlobUnavailable(f"blob {digest.hex()[:16]} not available from {len(peers)} peers"
                              + (f" ({'; '.join(problems[:3])})" if problems else ""))

    async def _fetch_from(self, peer: str, digest: bytes, max_size: int, timeout: float) -> bytes | None:
        parts: list[bytes] = []
        offset, total = 0, None
        while total is None or offset < total:
            req = self.sealer.seal(BlobRequest(digest, offset, CHUNK), _now_ms())
            started = time.monotonic()
            answer = await self.host.request(peer, PROTOCOL, req, timeout)
            took = time.monotonic() - started
            env = self.opener.open(answer, now_ms=_now_ms())
            if isinstance(env.body, BlobMissing):
                return None
            chunk = env.body
            if not isinstance(chunk, BlobChunk) or chunk.blob != digest or chunk.offset != offset:
                raise _Bad("answered with the wrong chunk")
            if total is None:
                total = chunk.total_size
                if total > max_size:
                    raise _Bad(f"blob is {total:,} bytes, over the {max_size:,}-byte limit")
            elif chunk.total_size != total:
                raise _Bad("changed the blob's size between chunks")
            if not chunk.data and offset < total:
                raise _Bad("sent an empty chunk")
            parts.append(chunk.data)
            offset += len(chunk.data)
            self._learn_link(peer, len(answer), took)
        data = b"".join(parts)
        if len(data) != total or hashlib.sha256(data).digest() != digest:
            raise _Bad("sent bytes that do not match the blob's hash")
        return data

    async def probe(self, peer: str, digest: bytes, timeout: float = 10.0) -> bool:
        """Measure the link from ``peer`` on a blob we already hold: ask it for a small range
        (``PROBE_SMALL`` bytes) and for the first chunk, and learn from both transfers.

        Two sizes on one link are what lets ``LinkTable.fit`` tell the per-request latency
        from the throughput; one transfer size alone cannot. The bytes are checked against our
        own copy (a peer sending others is reported, as for a fetch) and then dropped. Costs at
        most one chunk plus ``PROBE_SMALL`` of the peer's uplink; False if anything failed."""
        ours = self.store.read(digest, 0, CHUNK)
        if ours is None or peer == self.host.node_id or len(ours[0]) < 4 * PROBE_SMALL:
            return False  # a blob this small is all fixed cost: it would teach nothing
        try:
            for length in (PROBE_SMALL, len(ours[0])):
                req = self.sealer.seal(BlobRequest(digest, 0, length), _now_ms())
                started = time.monotonic()
                answer = await self.host.request(peer, PROTOCOL, req, timeout)
                took = time.monotonic() - started
                chunk = self.opener.open(answer, now_ms=_now_ms()).body
                if isinstance(chunk, BlobMissing):
                    return False
                if not isinstance(chunk, BlobChunk) or chunk.data != ours[0][:length] \
                        or chunk.total_size != ours[1]:
                    raise _Bad("answered a probe with bytes that are not the blob's")
                self._learn_link(peer, len(answer), took)
        except (P2PError, RemoteProtocolError, _Bad) as err:
            if isinstance(err, (RemoteProtocolError, _Bad)):
                self.host.report_fault(peer, getattr(err, "reason", "bad_blob"))
            log.debug("link probe of %s failed: %s", short_node_id(peer), err)
            return False
        self.probes += 1
        return True

    async def measure(self, peer: str, digest: bytes) -> int:
        """Probe ``peer``'s link on a blob we hold while the link still wants samples (never
        measured, not yet fitted, or stale: ``LinkTable.wants_samples``), at most
        ``MEASURE_PROBES`` times, never twice at once for one peer; the probes made.

        The submitter calls it on each output a worker offers: a fetch is one transfer size,
        and an FL round's outputs of one level are all one size, so without a probe the link's
        throughput keeps its per-request cost and reads slower than it is. Once fitted, the
        link is probed again only when stale: a worker pays at most two chunks of its uplink
        per ``PROBE_STALE_S``."""
        if peer in self._measuring:
            return 0
        self._measuring.add(peer)
        made = 0
        try:
            while made < MEASURE_PROBES and self.links.wants_samples(peer, time.monotonic()):
                if not await self.probe(peer, digest):
                    break
                made += 1
        finally:
            self._measuring.discard(peer)
        return made

    def _learn_link(self, peer: str, nbytes: int, seconds: float) -> None:
        now = time.monotonic()
        rtt = self.host.rtts.srtt(peer) if hasattr(self.host, "rtts") else None
        if rtt is not None:
            self.links.rtt(peer, rtt, now)
        self.links.observe(peer, nbytes, seconds, now)
        if len(self.links.peers()) > 64:
            self.links.expire(now)

    def status(self) -> dict[str, Any]:
        return {"served": self.served, "fetched": self.fetched, "probes": self.probes,
                "overtaken": self.overtaken, "retried": self.retried,
                "links": self.links.status(time.monotonic())}


class _Bad(DaemonError):
    reason = "bad_blob"

"""Blob fetches between two real hosts teach the fetcher its link to the server."""

from __future__ import annotations

import os
import time

from daemon.blobs.service import CHUNK, BlobService
from daemon.blobs.store import BlobStore
from protocol.envelope import EnvelopeOpener, EnvelopeSealer
from tests.daemon.p2p.conftest import identity, make_host, running, wait_until

NET = "novacron-test-links"


def _service(host, name, tmp_path):
    return BlobService(BlobStore(tmp_path / name), host,
                       EnvelopeSealer(identity(name), NET, context=1), EnvelopeOpener(NET))


async def test_fetched_chunks_feed_the_link_estimate_and_its_prediction_log(tmp_path):
    server = make_host("blob-server")
    served = _service(server, "blob-server", tmp_path)
    blobs = [served.store.put(os.urandom(3 * CHUNK + 1000)) for _ in range(3)]
    async with running(server):
        client = make_host("blob-client", bootstrap=server.listen_addrs())
        fetcher = _service(client, "blob-client", tmp_path)
        async with running(client):
            await wait_until(lambda: server.node_id in client.connected_peers(), 10)
            assert not fetcher.links.predict(server.node_id, CHUNK, 0).measured
            for digest in blobs:
                data = await fetcher.fetch(digest, [server.node_id], max_size=1 << 24)
                assert len(data) == 3 * CHUNK + 1000
    prediction = fetcher.links.predict(server.node_id, CHUNK, 0)
    assert prediction.measured and prediction.bandwidth > 1e5  # loopback: well over 100 kB/s
    status = fetcher.status()["links"]
    assert status["measured"] == 1
    # 9 full chunks (each blob's 1000-byte tail says nothing about throughput): the first is
    # learned from unpredicted, the other 8 were predicted before being learned from
    assert status["prediction"]["predicted"] == 8 and status["prediction"]["unmeasured"] == 1
    assert status["prediction"]["median_ratio_error"] >= 0


async def test_a_probe_measures_a_link_at_two_sizes_on_a_blob_both_hold(tmp_path):
    """The submitter holds a replica's output already (another replica sent it): a probe asks
    the worker for it at two sizes, so the fit tells latency from throughput, then stops."""
    from daemon.blobs.service import PROBE_SMALL
    from daemon.links.estimate import FIT_MIN

    worker = make_host("probe-worker")
    theirs = _service(worker, "probe-worker", tmp_path)
    data = os.urandom(200_000)
    digest = theirs.store.put(data)
    other = theirs.store.put(os.urandom(50_000))
    async with running(worker):
        host = make_host("probe-submitter", bootstrap=worker.listen_addrs())
        ours = _service(host, "probe-submitter", tmp_path)
        ours.store.put(data)
        async with running(host):
            await wait_until(lambda: worker.node_id in host.connected_peers(), 10)
            assert ours.links.wants_samples(worker.node_id, time.monotonic())
            probes = 0
            while ours.links.wants_samples(worker.node_id, time.monotonic()) and probes < 9:
                assert await ours.probe(worker.node_id, digest)
                probes += 1
            assert probes == FIT_MIN // 2 and ours.probes == probes
            assert ours.links.fit(worker.node_id) is not None
            est = dict(ours.links.items())[worker.node_id]
            assert sorted({n < 2 * PROBE_SMALL for n, _ in est.recent}) == [False, True]
            # a blob we do not hold is not probed, nor one too small to tell anything
            assert not await ours.probe(worker.node_id, other)
            tiny = ours.store.put(b"x" * 3000)
            theirs.store.put(b"x" * 3000)
            assert not await ours.probe(worker.node_id, tiny) and ours.probes == probes
    assert ours.fetched == 0  # nothing was stored: the bytes were only compared


async def test_a_fetched_output_is_probed_until_its_link_is_fitted_then_never_again(tmp_path):
    """The submitter fetched a worker's output (one size: throughput and per-request cost not
    yet told apart); ``measure`` probes that link at two more sizes until the fit holds, and
    then leaves it alone."""
    from daemon.blobs.service import MEASURE_PROBES

    worker = make_host("measure-worker")
    theirs = _service(worker, "measure-worker", tmp_path)
    digest = theirs.store.put(os.urandom(100_000))
    async with running(worker):
        host = make_host("measure-submitter", bootstrap=worker.listen_addrs())
        ours = _service(host, "measure-submitter", tmp_path)
        async with running(host):
            await wait_until(lambda: worker.node_id in host.connected_peers(), 10)
            await ours.fetch(digest, [worker.node_id], max_size=1 << 20)
            assert ours.links.fit(worker.node_id) is None
            assert await ours.measure(worker.node_id, digest) == MEASURE_PROBES
            assert ours.links.fit(worker.node_id) is not None
            assert not ours.links.wants_samples(worker.node_id, time.monotonic())
            assert await ours.measure(worker.node_id, digest) == 0
            assert ours.probes == MEASURE_PROBES and theirs.served == 1 + 2 * MEASURE_PROBES


async def test_two_fetches_of_one_blob_end_when_the_faster_source_has_delivered(tmp_path):
    """Two replicas offer the same output, the slow line's first: the submitter fetches from
    both at once. The fibre line's copy arrives, is stored, and the slow fetch stops there and
    returns it from the store: the replica on the slow line is not kept waiting (its report
    waits on this fetch) while its own copy crawls across."""
    import trio

    asked = trio.Event()

    class Crawling(BlobService):  # a line that takes a minute to send the chunk
        async def _serve(self, peer, frame):
            asked.set()
            await trio.sleep(60)
            return await super()._serve(peer, frame)

    slow, fast = make_host("copy-slow"), make_host("copy-fast")
    slow_blobs = Crawling(BlobStore(tmp_path / "copy-slow"), slow,
                          EnvelopeSealer(identity("copy-slow"), NET, context=1), EnvelopeOpener(NET))
    fast_blobs = _service(fast, "copy-fast", tmp_path)
    data = os.urandom(100_000)
    digest = slow_blobs.store.put(data)
    fast_blobs.store.put(data)
    async with running(slow, fast):
        host = make_host("copy-submitter", bootstrap=slow.listen_addrs() + fast.listen_addrs())
        ours = _service(host, "copy-submitter", tmp_path)
        async with running(host):
            await wait_until(lambda: {slow.node_id, fast.node_id} <= set(host.connected_peers()), 10)
            got: dict[str, bytes] = {}

            async def fetch(name, peer):
                got[name] = await ours.fetch(digest, [peer], max_size=1 << 20, timeout=120)

            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(fetch, "slow", slow.node_id)
                await asked.wait()
                nursery.start_soon(fetch, "fast", fast.node_id)
            assert got == {"slow": data, "fast": data}
            assert trio.current_time() - started < 30 and ours.overtaken == 1
            assert ours.fetched == 1 and fast_blobs.served == 1


async def test_a_source_that_answers_after_the_timeout_is_asked_again_with_a_longer_wait(tmp_path):
    """A submitter on a full uplink answers late: the fetch asks again, waiting twice as long,
    instead of failing the task's replica at the first timeout. A source that says it does not
    have the blob is not asked again."""
    import pytest
    import trio

    from daemon.blobs.service import FETCH_ROUNDS, BlobUnavailable

    class Late(BlobService):  # its first answer comes after 0.6 s, the rest at once
        answered = 0

        async def _serve(self, peer, frame):
            Late.answered += 1
            if Late.answered == 1:
                await trio.sleep(0.6)
            return await super()._serve(peer, frame)

    server = make_host("late-server")
    served = Late(BlobStore(tmp_path / "late-server"), server,
                  EnvelopeSealer(identity("late-server"), NET, context=1), EnvelopeOpener(NET))
    data = os.urandom(50_000)
    digest = served.store.put(data)
    async with running(server):
        client = make_host("late-client", bootstrap=server.listen_addrs())
        fetcher = _service(client, "late-client", tmp_path)
        async with running(client):
            await wait_until(lambda: server.node_id in client.connected_peers(), 10)
            assert await fetcher.fetch(digest, [server.node_id], max_size=1 << 20,
                                       timeout=0.4) == data
            assert fetcher.retried == 1 and Late.answered == 2
            with pytest.raises(BlobUnavailable, match="does not have it"):
                await fetcher.fetch(b"\x01" * 32, [server.node_id], max_size=1 << 20, timeout=0.4)
            assert fetcher.retried == 1 and Late.answered == 3 and FETCH_ROUNDS >= 2


async def test_a_stream_that_could_not_be_opened_counts_as_a_timeout_and_is_asked_again(tmp_path):
    """py-libp2p times out a new stream's protocol negotiation itself (10 s) and that fails as
    "open": on a submitter's full uplink it is the same slowness as a timeout."""
    from daemon.p2p import RequestFailed

    class Negotiating(BlobService):  # the first open fails, the second delivers
        tries = 0

        async def _fetch_from(self, peer, digest, max_size, timeout):
            Negotiating.tries += 1
            if Negotiating.tries == 1:
                raise RequestFailed("failed to open a stream", "open")
            return data

    data = b"module bytes"
    host = make_host("negotiating")
    fetcher = Negotiating(BlobStore(tmp_path / "negotiating"), host,
                          EnvelopeSealer(identity("negotiating"), NET, context=1),
                          EnvelopeOpener(NET))
    assert await fetcher.fetch(b"\x02" * 32, ["12D3KooWsomeone"], max_size=100) == data
    assert Negotiating.tries == 2 and fetcher.retried == 1

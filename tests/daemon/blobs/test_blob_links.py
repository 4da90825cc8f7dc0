"""Blob fetches between two real hosts teach the fetcher its link to the server."""

from __future__ import annotations

import os

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

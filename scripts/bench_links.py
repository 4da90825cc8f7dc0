"""How well link estimates predict the next transfer, on real blob fetches; prints JSON.

Two real libp2p hosts on 127.0.0.1, each with the daemon's blob service; the client fetches
``--blobs`` blobs of sizes drawn from 64 KiB to 4 MiB (seeded), chunk by chunk as a daemon
does. Before each chunk is learned from, the link table (``daemon/links``) predicts its
time; the error is ``|actual / predicted - 1|`` (median and 90th percentile). Baseline in the
same run: the naive predictor "the last chunk's throughput, no round trip".

Loopback has no real bottleneck, so this shows the estimator's mechanics and overhead on
real transfers, not its accuracy on a WAN link; ``scripts/bench_fl.py``'s ``links`` section
has the simulated ``planet`` links.

``--small``: blobs of 512 B to 64 KiB instead (one chunk each: FL updates, task files), where
a request's fixed cost outweighs its bytes. Every transfer, small ones included, is predicted
two ways before it is learned from: the log-throughput estimate (``LinkTable.predict``) and
the latency + bytes/throughput fit over the recent transfers (``LinkTable.fit``, what the
published summaries use once sizes differ).

Usage: ``nice -n 10 .venv/bin/python scripts/bench_links.py [--blobs 40] [--seed 1] [--small]``
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.blobs.service import BlobService  # noqa: E402
from daemon.blobs.store import BlobStore  # noqa: E402
from daemon.links import LinkTable  # noqa: E402
from protocol.envelope import EnvelopeOpener, EnvelopeSealer  # noqa: E402
from tests.daemon.p2p.conftest import identity, make_host, running, wait_until  # noqa: E402

NET = "novacron-bench-links"


class NaiveLinks(LinkTable):
    """Baseline: predict with the last chunk's throughput alone."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[object, float] = {}
        self.naive_errors: list[float] = []
        self.all_sizes: dict[str, list[float]] = {"log_throughput": [], "fit": []}

    def observe(self, peer, nbytes, seconds, now):  # type: ignore[no-untyped-def]
        fit = self.fit(peer)
        if fit is not None:  # both ways, on every size, only once the fit has an answer
            p = self.predict(peer, nbytes, now)
            self.all_sizes["log_throughput"].append(abs(math.log(seconds / p.seconds)))
            self.all_sizes["fit"].append(abs(math.log(seconds / (fit[0] + nbytes / fit[1]))))
        if peer in self.last and nbytes >= 4096:
            self.naive_errors.append(abs(math.log(seconds / (nbytes / self.last[peer]))))
        if nbytes >= 4096:
            self.last[peer] = nbytes / seconds
        return super().observe(peer, nbytes, seconds, now)


def _q(errors: list[float], q: float) -> float:
    ordered = sorted(errors)
    return round(math.exp(ordered[min(len(ordered) - 1, int(q * len(ordered)))]) - 1, 4)


async def main(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        server = make_host("links-server")
        served = BlobService(BlobStore(Path(tmp) / "s"), server,
                             EnvelopeSealer(identity("links-server"), NET, 1), EnvelopeOpener(NET))
        lo, hi = (512, 64 << 10) if args.small else (64 << 10, 4 << 20)
        digests = [served.store.put(rng.randbytes(int(math.exp(rng.uniform(
            math.log(lo), math.log(hi)))))) for _ in range(args.blobs)]
        async with running(server):
            client = make_host("links-client", bootstrap=server.listen_addrs())
            fetcher = BlobService(BlobStore(Path(tmp) / "c"), client,
                                  EnvelopeSealer(identity("links-client"), NET, 1),
                                  EnvelopeOpener(NET))
            fetcher.links = NaiveLinks()
            async with running(client):
                await wait_until(lambda: server.node_id in client.connected_peers(), 10)
                started = time.perf_counter()
                total = 0
                for d in digests:
                    total += len(await fetcher.fetch(d, [server.node_id], max_size=1 << 24))
                seconds = time.perf_counter() - started
    links = fetcher.links
    assert isinstance(links, NaiveLinks)
    every = {k: {"predicted": len(v), "median_ratio_error": _q(v, 0.5) if v else None,
                 "p90_ratio_error": _q(v, 0.9) if v else None}
             for k, v in links.all_sizes.items()}
    return {"bench": "links", "blobs": args.blobs, "sizes": [lo, hi], "bytes": total,
            "throughput_MBps": round(total / seconds / 1e6, 1),
            "estimate": links.status(0.0)["prediction"],
            "baseline_last_chunk": {"predicted": len(links.naive_errors),
                                    "median_ratio_error": _q(links.naive_errors, 0.5),
                                    "p90_ratio_error": _q(links.naive_errors, 0.9)},
            "every_transfer_once_fitted": every}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blobs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="blobs of 512 B to 64 KiB")
    print(json.dumps(trio.run(main, ap.parse_args())))

"""Prometheus metrics (``prometheus-client``): off by default, on 127.0.0.1 only.

Enable with ``[metrics] port = 9464`` in the node's config; scrape
``http://127.0.0.1:9464/metrics``. Nothing is counted twice: at each scrape ``NodeCollector``
reads the counters the services already keep for ``novacron status`` and ``p2p.metrics``
(a collector, not a second set of counters to keep in step). docs/volunteer.md lists every
name; ``METRICS`` below is that list, and a test checks both agree.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from consensus.committee import DIRECTORY_SHARD
from daemon.web import http

log = logging.getLogger("novacron.metrics")

METRICS: dict[str, str] = {
    "novacron_info": "the node: version, node id and network as labels (always 1)",
    "novacron_uptime_seconds": "seconds since the daemon started",
    "novacron_tasks_total": "task runs on this node by outcome (OK, EXITED, OUT_OF_FUEL, ...)",
    "novacron_task_cpu_seconds_total": "CPU seconds this node's workers spent on tasks",
    "novacron_sandbox_seconds_total": "wall-clock seconds tasks spent in the sandbox",
    "novacron_tasks_running": "tasks running now",
    "novacron_workers": "worker processes (task slots)",
    "novacron_accepting_tasks": "1 if the node takes new tasks now, else 0",
    "novacron_cpu_duty": "share of each second the workers may run (CPU-share throttle)",
    "novacron_worker_faults_total": "worker processes lost, by kind (crashed, killed)",
    "novacron_consensus_commits_total": "requests committed by this node's replicas, by shard",
    "novacron_consensus_view_changes_total": "view changes of this node's replicas, by shard",
    "novacron_consensus_queue_depth": "requests waiting to be proposed, by shard",
    "novacron_task_queue_depth": "task offers accepted and waiting for a free worker",
    "novacron_p2p_connections": "peers connected now",
    "novacron_p2p_known_peers": "peers in the address book",
    "novacron_p2p_bytes_total": "bytes on direct streams, by direction (in, out)",
    "novacron_p2p_drops_total": "outbound frames and gossip messages dropped, by cause",
    "novacron_peer_faults_total": "faults blamed on peers (bad frames, bad signatures ...), by kind",
    "novacron_jobs_submitted_total": "jobs submitted from this node",
    "novacron_results_certified_total": "task results certified for jobs submitted here",
}


class NodeCollector(Collector):
    """Reads ``status()`` (dict per service name) and the p2p host's counters at each scrape."""

    def __init__(self, status: Callable[[], dict[str, Any]],
                 p2p_metrics: Callable[[], dict[str, Any]]) -> None:
        self.status = status
        self.p2p_metrics = p2p_metrics

    def collect(self) -> Iterator[Metric]:
        st = self.status()
        s = st["services"]
        info = GaugeMetricFamily("novacron_info", METRICS["novacron_info"],
                                 labels=["version", "node_id", "network"])
        info.add_metric([st["version"], st["node_id"], st["network"]], 1)
        yield info
        yield GaugeMetricFamily("novacron_uptime_seconds", METRICS["novacron_uptime_seconds"],
                                value=st["uptime_s"])
        yield from self._tasks(s.get("owner", {}), s.get("runtime", {}))
        yield from self._consensus(s.get("consensus", {}))
        jobs = s.get("jobs", {})
        yield GaugeMetricFamily("novacron_task_queue_depth", METRICS["novacron_task_queue_depth"],
                                value=jobs.get("worker", {}).get("queued", 0))
        sub = jobs.get("submitter", {})
        yield _counter("novacron_jobs_submitted_total", sub.get("jobs", 0))
        yield _counter("novacron_results_certified_total", sub.get("tasks_certified", 0))
        yield from self._p2p(self.p2p_metrics())

    def _tasks(self, owner: dict[str, Any], runtime: dict[str, Any]) -> Iterator[Metric]:
        totals = owner.get("totals", {})
        tasks = CounterMetricFamily("novacron_tasks", METRICS["novacron_tasks_total"],
                                    labels=["outcome"])
        for outcome, n in sorted(totals.get("by_outcome", {}).items()):
            tasks.add_metric([outcome], n)
        yield tasks
        yield _counter("novacron_task_cpu_seconds_total", totals.get("cpu_s", 0.0))
        yield _counter("novacron_sandbox_seconds_total", totals.get("wall_s", 0.0))
        yield GaugeMetricFamily("novacron_tasks_running", METRICS["novacron_tasks_running"],
                                value=runtime.get("running", 0))
        yield GaugeMetricFamily("novacron_workers", METRICS["novacron_workers"],
                                value=runtime.get("workers", 0))
        yield GaugeMetricFamily("novacron_accepting_tasks", METRICS["novacron_accepting_tasks"],
                                value=1 if runtime.get("accepting") else 0)
        yield GaugeMetricFamily("novacron_cpu_duty", METRICS["novacron_cpu_duty"],
                                value=owner.get("duty", 1.0))
        faults = CounterMetricFamily("novacron_worker_faults",
                                     METRICS["novacron_worker_faults_total"], labels=["kind"])
        faults.add_metric(["crashed"], runtime.get("workers_crashed", 0))
        faults.add_metric(["killed"], runtime.get("workers_killed", 0))
        yield faults

    def _consensus(self, cons: dict[str, Any]) -> Iterator[Metric]:
        commits, views = Counter[str](), Counter[str]()
        for r in cons.get("replicas", []):
            shard = _shard(r["shard"])
            commits[shard] += r.get("commits", 0)
            views[shard] += r.get("view_changes", 0)
        c = CounterMetricFamily("novacron_consensus_commits",
                                METRICS["novacron_consensus_commits_total"], labels=["shard"])
        v = CounterMetricFamily("novacron_consensus_view_changes",
                                METRICS["novacron_consensus_view_changes_total"], labels=["shard"])
        for shard in sorted(commits):
            c.add_metric([shard], commits[shard])
            v.add_metric([shard], views[shard])
        yield c
        yield v
        q = GaugeMetricFamily("novacron_consensus_queue_depth",
                              METRICS["novacron_consensus_queue_depth"], labels=["shard"])
        for shard, client in sorted(cons.get("clients", {}).items()):
            q.add_metric([shard], client.get("queued", 0))
        yield q

    def _p2p(self, m: dict[str, Any]) -> Iterator[Metric]:
        yield GaugeMetricFamily("novacron_p2p_connections", METRICS["novacron_p2p_connections"],
                                value=m.get("connected_peers", 0))
        yield GaugeMetricFamily("novacron_p2p_known_peers", METRICS["novacron_p2p_known_peers"],
                                value=m.get("known_peers", 0))
        b = CounterMetricFamily("novacron_p2p_bytes", METRICS["novacron_p2p_bytes_total"],
                                labels=["direction"])
        b.add_metric(["in"], sum(m.get("bytes_in", {}).values()))
        b.add_metric(["out"], sum(m.get("bytes_out", {}).values()))
        yield b
        d = CounterMetricFamily("novacron_p2p_drops", METRICS["novacron_p2p_drops_total"],
                                labels=["cause"])
        drops = Counter(m.get("drops", {}))
        drops.update({f"gossip_{k}": v for k, v in m.get("gossip", {}).get("dropped", {}).items()})
        for cause, n in sorted(drops.items()):
            d.add_metric([cause], n)
        yield d
        f = CounterMetricFamily("novacron_peer_faults", METRICS["novacron_peer_faults_total"],
                                labels=["kind"])
        kinds: Counter[str] = Counter()
        for reasons in m.get("faults", {}).values():
            kinds.update(reasons)
        for kind, n in sorted(kinds.items()):
            f.add_metric([kind[:80]], n)
        yield f


def _counter(name: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name.removesuffix("_total"), METRICS[name], value=value)


def _shard(shard: Any) -> str:
    return "directory" if shard == DIRECTORY_SHARD else f"shard{shard}"


class MetricsService:
    """Serves ``/metrics`` on 127.0.0.1:``port`` (0 in the config: off, nothing listens)."""

    name = "metrics"

    def __init__(self, port: int, collector: NodeCollector) -> None:
        self.port = port
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self.bound: int | None = None
        self.scrapes = 0

    def bind(self) -> None:
        if self.port:
            self._sock = http.bind(self.port, "[metrics] port")
            self.bound = self._sock.getsockname()[1]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self.port:
            task_status.started()
            return
        if self.bound is None:
            self.bind()
        log.info("metrics on http://%s:%d/metrics", http.LOOPBACK, self.bound)
        await http.serve(self._sock, self._handle, task_status=task_status)

    async def _handle(self, request: http.Request) -> http.Response:
        if request.path != "/metrics":
            return http.Response(404, b"only /metrics here\n", "text/plain; charset=utf-8")
        if request.method not in ("GET", "HEAD"):
            return http.Response(405, b"GET /metrics\n", "text/plain; charset=utf-8")
        self.scrapes += 1
        body = generate_latest(self.registry)  # in the trio thread: it reads live service state
        return http.Response(200, body, "text/plain; version=0.0.4; charset=utf-8")

    def status(self) -> dict[str, Any]:
        where = f"http://{http.LOOPBACK}:{self.bound}/metrics" if self.bound else "off"
        return {"health": "ok", "summary": f"{where}" + (f", {self.scrapes} scrapes" if self.bound else
                                                         " (set [metrics] port to turn on)"),
                "url": where if self.bound else None, "scrapes": self.scrapes}

    def register_rpc(self, server: Any) -> None:
        """No control methods: ``status`` says where to scrape."""

"""Run a node as a process: logging, the data directory, signals, clean shutdown.

SIGINT and SIGTERM cancel the node's nursery; services close their sockets in ``finally``
blocks, and the whole shutdown is bounded (``SHUTDOWN_GRACE``) so the process is gone within
2 seconds of the signal even if a peer connection hangs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any
import random
import signal
import sys
import time
from collections.abc import Callable

import trio

from daemon.attest.collect import LocalAttester
from daemon.attest.service import AttestationService
from daemon.attest.verify import VerifierConfig
from daemon.blobs import BlobService, BlobStore
from daemon.committees import CommitteeService
from daemon.config import NodeConfig, load_trusted_cas
from daemon.genesis import Genesis, load_genesis, write_testnet_genesis
from daemon.flrun.service import FLService
from daemon.jobs.service import JobsService
from daemon.links import summarize
from daemon.ledger.shard import LedgerShards, member_phase
from daemon.membership import Membership
from daemon.node import Node
from daemon.owner import OwnerService, Settings
from daemon.owner.standing import Standing
from daemon.web.metrics import MetricsService, NodeCollector
from daemon.web.ui import UiService
from daemon.p2p.config import P2PConfig
from daemon.p2p.service import P2PService
from daemon.runtime import WorkerPool, default_pool_config, interpreter
from daemon.runtime.python_service import PythonRuntimeService
from daemon.softstate.service import SoftStateService
from daemon.duplicate import last_seen_addresses, refuse_if_live
from daemon.storage.claim import claim_data_dir
from daemon.storage.datadir import ensure_data_dir
from daemon.storage.db import Database
from daemon.storage.keyfile import load_or_create_identity
from protocol.envelope import EnvelopeOpener, EnvelopeSealer
from protocol.identity import NodeIdentity

log = logging.getLogger("novacron")

SHUTDOWN_GRACE = 1.5
STOP_ANSWER_S = 0.1
"""Time for the control socket to send the answer to ``stop`` before everything is cancelled."""


def setup_logging(config: NodeConfig) -> None:
    root = logging.getLogger()
    root.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(fmt)
    root.addHandler(handler)
    log_file = config.log_file or config.data_dir / "node.log"
    file_handler = logging.FileHandler(log_file)
    file_handler.setFormatter(fmt)
    root.addHandler(file_handler)
    root.setLevel(getattr(logging, config.log_level.upper()))


async def serve(node: Node, on_ready: Callable[[], None] | None = None) -> None:
    """Run ``node`` until SIGINT/SIGTERM, then shut down within ``SHUTDOWN_GRACE``."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            if on_ready is not None:
                on_ready()
            nursery.start_soon(_stop_on_request, node, nursery.cancel_scope)
            async for signum in signals:
                log.info("received %s: shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    log.info("stopped")


async def _stop_on_request(node: Node, scope: trio.CancelScope) -> None:
    """``novacron stop``: the same clean shutdown as SIGTERM, once the request is answered."""
    await node.stop_requested.wait()
    log.info("stop requested over the control socket: shutting down")
    await trio.sleep(STOP_ANSWER_S)
    scope.cancel()


def build_node(config: NodeConfig) -> Node:
    """Open the data directory, key and database; add the services. Raises on a bad set-up.

    Two plain phases: build every service, then connect the ones that need each other (the
    soft state and the committees know each other; attestation knows both) through their
    typed ``connect`` methods: no forward references, no attributes patched from outside."""
    ensure_data_dir(config.data_dir)
    identity, created = load_or_create_identity(config.data_dir)
    if created:
        log.info("created node key %s", config.data_dir / "node.key")
    db = Database(config.db_path, sync=config.storage_sync)
    node = Node(config, identity, db)
    node.control.bind()
    rng = random.Random(os.urandom(16))
    p2p_config = P2PConfig(listen=config.listen, bootstrap=config.bootstrap,
                           announce=config.announce, relay_service=config.relay_service)
    p2p = P2PService(identity, p2p_config, rng)
    node.add(p2p)
    genesis = _genesis(config, identity)
    host = p2p.host
    vol = config.volunteer
    python_cache = vol.python_cache or interpreter.default_cache_dir()
    pool = WorkerPool(replace(default_pool_config(vol.cpu_share, vol.max_memory_mb, vol.idle_only,
                                                  vol.hours, config.data_dir),
                              python_cache_dir=python_cache))
    node.add(pool)
    owner = OwnerService(db, Settings.from_config(vol), pool)
    owner.try_cgroup(str(os.getpid()))  # before the pool spawns a worker

    # Attestation: the genesis digest binds the gossiped evidence to this network; verifiers
    # that want freshness challenge the node with a nonce of their own (AttestationService).
    attester = LocalAttester(config.data_dir, tcti=config.attest_tcti)
    cas = load_trusted_cas(config.trusted_ek_cas)

    # Phase 1, build: each service from its settings and what was built before it; nothing
    # refers to a service not built yet.
    attest = AttestationService(identity, host, attester, genesis.digest,
                                VerifierConfig(trusted_ek_cas=cas), rng=rng)
    soft = SoftStateService(identity, genesis.network, host, db, slots=pool.size,
                            memory_mib=vol.max_memory_mb, domain=vol.domain,
                            load=pool.load_permille)
    committees = CommitteeService(identity, genesis, host, db,
                                  LedgerShards(member_phase(identity.public_key)))
    session = int.from_bytes(os.urandom(8), "big") >> 1
    blobs = BlobService(BlobStore(config.data_dir / "blobs"), host,
                        EnvelopeSealer(identity, genesis.network, context=session),
                        EnvelopeOpener(genesis.network))
    jobs = JobsService(identity, committees, host, blobs, pool, soft)

    # Phase 2, connect: services that need each other get told, in one place.
    attest.connect(registry=soft, committees=committees)
    soft.connect(attester=attest, hard=committees, silence_s=genesis.params["evict_after_s"])
    # Link estimates are learned by the blob service (its clock: monotonic) and published in
    # the soft state, where any node reads the link between two others (FL level choice).
    soft.links.source = lambda now_ms: summarize(blobs.links, identity.node_id,
                                                 time.monotonic(), now_ms)
    committees.connect(soft)
    p2p.peer_info.append(soft.peer_info)
    # Discovery: peers' addresses come from their signed capability records; the peers of our
    # committees are kept connected, other work connections are trimmed when idle.
    host.set_address_source(lambda: ((r.node_id, r.listen_addrs) for r in soft.records()),
                            lambda node: _listen_addrs(soft, node))
    host.set_keep_source(committees.peers_to_keep)
    for service in (soft, committees, attest, jobs):
        node.add(service)
    Membership(db, committees, soft, jobs.worker).register_rpc(node.control)

    def offer_python(runtime: str) -> None:
        soft.runtimes = (*soft.runtimes, "python", runtime)
        jobs.worker.more_runtimes = (runtime,)
        soft.publish("python runtime ready")

    python = PythonRuntimeService(python_cache, enabled=vol.python, fetch=vol.python_fetch,
                                  on_ready=offer_python)
    node.add(python)
    # FL runs submitted from this node: rounds through the jobs service, evaluation in the pool
    node.add(FLService(db, jobs, soft, pool, genesis,
                       python=lambda: (python.state.value, python.detail)))
    owner.attach(soft, jobs.worker, Standing(
        identity.node_id, jobs.ledger, lambda: (r.job for r in owner.tasks.recent(200))))
    node.add(owner)
    ui = UiService(config.ui_port, config.data_dir, owner, node.status,
                   lambda: _sessions(soft), lambda: _attestation(attest))
    ui.bind()
    node.add(ui)
    metrics = MetricsService(config.metrics_port, NodeCollector(node.status, host.metrics))
    metrics.bind()  # a port the owner asked for and cannot have: fail now, in one line
    node.add(metrics)
    return node


def _listen_addrs(soft: SoftStateService, node: str) -> tuple[str, ...]:
    record = soft.record_of(node)
    return tuple(record.listen_addrs) if record else ()


def _attestation(attest: AttestationService) -> dict[str, Any]:
    """The report the node last built (building one may drive a TPM: not per page view)."""
    if attest.report is None:
        return {"kind": "unknown", "reasons": ["not built yet"]}
    return attest.report.to_wire()


def _sessions(soft: SoftStateService) -> list[tuple[float, float]]:
    """The node's up sessions, the open one last (what its availability forecast is made of)."""
    h = soft.availability.history
    now = [(h.current_start, h.last_alive or h.current_start)] if h.current_start else []
    return [*h.sessions, *now]


def _genesis(config: NodeConfig, identity: NodeIdentity) -> Genesis:
    """The network's genesis; without one, this node founds a network of one (and says so)."""
    path = config.genesis_path
    if not path.exists() and config.genesis is None:
        log.warning("no genesis file at %s: founding a one-node network %r (to join a network, "
                    "pass its genesis with --genesis)", path, config.network)
        write_testnet_genesis(config.network, [identity], path)
    return load_genesis(path, config.network)


def single_error(group: BaseExceptionGroup) -> BaseException:
    """The one real error inside nested exception groups (a nursery wraps what a service raised)."""
    leaves = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(group)
    return leaves[0] if len(leaves) == 1 else group


def run_daemon(config: NodeConfig) -> None:
    # The claim: this process alone on the directory, owner-only files, no leftovers if the
    # start fails. Then no other live daemon may hold this key (daemon.duplicate).
    with claim_data_dir(config.data_dir, config.genesis_path, config.socket_path) as claim:
        setup_logging(config)
        node = build_node(config)
        try:
            refuse_if_live(node.identity, last_seen_addresses(node))
            trio.run(serve, node, claim.started)
        except BaseExceptionGroup as group:
            raise single_error(group) from None
        finally:
            node.db.close()

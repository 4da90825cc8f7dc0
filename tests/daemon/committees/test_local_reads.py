"""Reads of the job ledger (``Query``, ``WorkerQuery``) answered from a member's own replica:
four real committee services over an in-process network, in virtual time."""

from __future__ import annotations

from pathlib import Path

import trio

from daemon.jobs.ports import CommitteeLedger
from daemon.ledger.shard import ledger_operation
from protocol.canonical import unpackb
from protocol.messages import ledger as ops
from tests.daemon.committees.test_service_clock import a_job, committee


async def test_a_member_reads_the_ledger_from_its_own_replica_and_orders_what_it_lacks(
        tmp_path: Path, autojump_clock: object) -> None:
    """A status read was a committee request like any write (6-13 s each on a busy 30-daemon
    testnet, and each delayed the writes queued behind it). A member answers it from its
    replica's committed state: the same reply as the ordered read, with no request sent. A
    job its replica does not know (it may be behind) is still asked of the committee."""
    net, services = committee(tmp_path, shards=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        for svc in services:
            await nursery.start(svc.run)
        await trio.sleep(1)  # the first clock reports
        job = unpackb(await services[0].submit(0, ledger_operation(a_job(1))))["job"]
        await trio.sleep(1)  # every replica has executed it
        reader = services[1]
        ledger = CommitteeLedger(reader)
        sent = reader.clients[0].completed
        local = await ledger.order(0, ops.Query(job, 0, 1, True))
        assert reader.clients[0].completed == sent and reader.local_reads == 1
        ordered = unpackb(await reader.submit(0, ledger_operation(ops.Query(job, 0, 1, True))))
        assert reader.clients[0].completed == sent + 1
        del local["now_ms"], ordered["now_ms"]  # the ledger clock may tick in between
        assert local == ordered and local["counts"]["tasks"] == 1 and local["tasks"]
        record = await ledger.order(0, ops.WorkerQuery(services[2].identity.node_id))
        assert record["known"] is False and reader.local_reads == 2
        unknown = await ledger.order(0, ops.Query(b"\x09" * 32, 0, 0, False))
        assert "no job" in unknown["error"] and reader.clients[0].completed == sent + 2
        nursery.cancel_scope.cancel()

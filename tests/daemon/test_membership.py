"""``novacron leave`` is kept across restarts, and ``join`` undoes it (the wiring; the whole
flow on real daemons is tests/e2e/test_membership.py)."""

from __future__ import annotations

from types import SimpleNamespace

from daemon.membership import LEFT_REASON, Membership
from daemon.storage.db import Database


def parts():
    sent: list = []

    async def submit(shard, op, timeout):
        sent.append((shard, op))
        return b"ok"

    async def leave(reason):
        return 2

    committees = SimpleNamespace(epochs=SimpleNamespace(stay_out=False), submit=submit)
    soft = SimpleNamespace(slots=4, publish=lambda reason: sent.append(reason))
    worker = SimpleNamespace(declining=None, leave=leave)
    return committees, soft, worker, sent


async def test_leaving_is_kept_across_a_restart_until_join(tmp_path):
    db = Database(tmp_path / "node.db")
    committees, soft, worker, sent = parts()
    m = Membership(db, committees, soft, worker)  # type: ignore[arg-type]
    res = await m.rpc_leave({})
    assert res == {"state": "left", "directory": "ok", "released_on_shards": 2}
    assert committees.epochs.stay_out and soft.slots == 0 and worker.declining == LEFT_REASON
    assert "leave" in sent and (await m.rpc_leave({}))["state"] == "already left"

    committees, soft, worker, _ = parts()  # the daemon restarts on the same database
    m = Membership(db, committees, soft, worker)  # type: ignore[arg-type]
    assert committees.epochs.stay_out and soft.slots == 0 and worker.declining == LEFT_REASON
    assert (await m.rpc_join({})) == {"state": "joining"}
    assert not committees.epochs.stay_out and soft.slots == 4 and worker.declining is None
    assert (await m.rpc_join({}))["state"] == "already in"

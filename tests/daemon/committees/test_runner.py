"""The action contract: persist before send, and a failing listener never drops a send."""

from consensus.actions import Broadcast, Committed, Persist, Send
from daemon.committees.runner import ActionSink
from daemon.storage.db import Database


def test_persists_are_durable_before_the_sends_after_them(tmp_path):
    db = Database(tmp_path / "n.db")
    seen = []

    def send(pk, data):
        seen.append((data, db.get("ns", "k1"), db.get("ns", "k2")))

    sink = ActionSink(db, send, lambda owner, ev: None)
    sink.execute(None, "ns", [b"a", b"b", b"me"], b"me",
                 [Persist("k1", b"v1"), Persist("k2", b"v2"), Send(b"a", b"m1"),
                  Persist("k1", None), Broadcast(b"m2")])
    assert seen[0] == (b"m1", b"v1", b"v2")          # both persisted before the send
    assert seen[1] == (b"m2", None, b"v2") == seen[2]  # the delete too, before the broadcast
    assert len(seen) == 3  # broadcast skips ourselves


def test_a_failing_listener_does_not_drop_later_sends(tmp_path):
    db = Database(tmp_path / "n.db")
    sent = []

    def bad_listener(owner, event):
        raise AttributeError("a bug in a listener")

    sink = ActionSink(db, lambda pk, d: sent.append(d), bad_listener)
    sink.execute(None, "ns", [b"a"], b"me",
                 [Committed(1, 0, b"\0" * 32, (), (), None), Send(b"a", b"after")])
    assert sent == [b"after"]

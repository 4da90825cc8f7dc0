"""The node's SQLite database (WAL): one file under the data directory for all durable state.

Durability: in WAL mode every committed transaction is in the WAL file before ``commit``
returns, so a SIGKILL loses nothing we acknowledged. ``sync="normal"`` (default) fsyncs only at
checkpoints and can lose the last transactions on power loss; ``sync="full"`` fsyncs each
commit. Consensus code persists before it sends (see ``consensus.actions``), so whatever it
voted is on disk before any peer can see the vote.

Layout: a namespaced key-value table (namespaces such as ``crdt``, ``pbft/<shard>``,
``jobs``) with BLOB values, plus a schema version. Subsystems own their namespaces; values are
canonical msgpack written by the subsystem itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.errors import DaemonError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns    TEXT NOT NULL,
    key   BLOB NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
"""


class StorageError(DaemonError):
    """The database cannot be used; the message says why and what to do."""


class Database:
    def __init__(self, path: Path, sync: str = "normal") -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'full' else 'NORMAL'}")
            self._db.execute("PRAGMA busy_timeout=5000")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{path} was written by a newer NovaCron (schema {version}, this one reads "
                    f"{SCHEMA_VERSION}); upgrade NovaCron or use another data directory"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            raise StorageError(f"cannot open database {path}: {err}; if it is damaged, move it "
                               "away and the node will start afresh") from None
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes into one atomic, durable commit (nested calls join the outer one)."""
        if self._depth == 0:
            self._db.execute("BEGIN IMMEDIATE")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self._db.execute("COMMIT")

    def put(self, ns: str, key: bytes | str, value: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                         (ns, _k(key), value))

    def put_many(self, ns: str, items: Iterable[tuple[bytes | str, bytes]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)",
                             ((ns, _k(k), v) for k, v in items))

    def get(self, ns: str, key: bytes | str) -> bytes | None:
        row = self._db.execute("SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, _k(key))).fetchone()
        return None if row is None else bytes(row[0])

    def delete(self, ns: str, key: bytes | str) -> None:
        self._db.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, _k(key)))

    def delete_range(self, ns: str, lo: bytes, hi: bytes) -> None:
        """Delete keys in [lo, hi) (byte order), e.g. a truncated consensus log prefix."""
        self._db.execute("DELETE FROM kv WHERE ns = ? AND key >= ? AND key < ?", (ns, lo, hi))

    def scan(self, ns: str, prefix: bytes = b"") -> list[tuple[bytes, bytes]]:
        if prefix:
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE ns = ? AND key >= ? AND key < ? ORDER BY key",
                (ns, prefix, _next_prefix(prefix)))
        else:
            rows = self._db.execute("SELECT key, value FROM kv WHERE ns = ? ORDER BY key", (ns,))
        return [(bytes(k), bytes(v)) for k, v in rows]

    def clear(self, ns: str) -> None:
        self._db.execute("DELETE FROM kv WHERE ns = ?", (ns,))


def _k(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else key


def _next_prefix(prefix: bytes) -> bytes:
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return b"\xff" * (len(prefix) + 1)
    p[-1] += 1
    return bytes(p)

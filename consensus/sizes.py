"""The largest message a replica can build, from its configuration alone. Pure.

Every message goes out as one frame, and the transport refuses frames over its cap
(``max_frame``, 512 KiB in the daemon). A replica must therefore never *build* a larger one,
whatever clients sent: a refused pre-prepare or new view is not an error that goes away, it is
re-proposed by every new primary and wedges the committee (it did, for a 3,000-task job).

So the protocol is shaped for bounded messages: a batch is cut at ``max_batch_bytes`` of
requests (any single request fits), and view changes and new views carry digests and compact
vote certificates, never batches (``consensus.viewchange``). This module gives the worst case of
each message kind as a function of the committee size n, the window L, the batch limits and the
state-transfer chunk; ``ReplicaConfig`` refuses a configuration whose worst case is over its
``max_message``, and the tests build each kind at its adversarial maximum and compare.

The bounds are deliberately loose upper bounds (msgpack's largest length prefixes, the longest
network name an envelope allows, 64-bit integers everywhere).
"""

from __future__ import annotations

from consensus.quorum import quorum_size

ENVELOPE_OVERHEAD = 384
"""Header, type name, sender key, signature and framing of one signed envelope (at most ~240
bytes measured with the longest network name and largest integers)."""
MAX_OPERATION = 64 * 1024
"""A request's operation (``Request.operation`` is a ``SmallBlob``); a reply's result too."""
MAX_REQUEST_BYTES = MAX_OPERATION + ENVELOPE_OVERHEAD
"""The largest signed request envelope."""
ITEM = 5
"""msgpack prefix of one bytes or array item, at most."""
INT = 9
DIGEST = 32 + ITEM
VOTE = 64 + ITEM
CHECKPOINT_ENVELOPE = 320
"""A signed ``Checkpoint`` (measured: ~262 bytes at the largest)."""


def _cert(n: int) -> int:
    """A ``PreparedCert`` or ``QuorumCert`` of a quorum of n."""
    return ITEM + 4 * INT + DIGEST + (n + 7) // 8 + ITEM + ITEM + quorum_size(n) * VOTE


def batch_message(max_batch_bytes: int, batch_size: int) -> int:
    """A pre-prepare or a batch body: the requests plus their item prefixes."""
    return ENVELOPE_OVERHEAD + 5 * INT + DIGEST + VOTE + ITEM + \
        max_batch_bytes + batch_size * ITEM


def commit_proof(n: int, max_batch_bytes: int, batch_size: int) -> int:
    return batch_message(max_batch_bytes, batch_size) + _cert(n)


def checkpoint_proof(n: int) -> int:
    return ITEM + quorum_size(n) * (CHECKPOINT_ENVELOPE + ITEM)


def view_change(n: int, window: int) -> int:
    """Stable checkpoint proof plus one prepared certificate per sequence number in the window."""
    return ENVELOPE_OVERHEAD + 5 * INT + DIGEST + checkpoint_proof(n) + ITEM + \
        window * _cert(n)


def new_view(n: int, window: int) -> int:
    """A quorum of view-change digests plus (seq, digest, vote) per sequence number."""
    return ENVELOPE_OVERHEAD + 3 * INT + ITEM + quorum_size(n) * DIGEST + ITEM + \
        window * (ITEM + INT + DIGEST + VOTE)


def state_chunk(chunk_size: int) -> int:
    return ENVELOPE_OVERHEAD + 6 * INT + DIGEST + ITEM + chunk_size


def reply() -> int:
    return ENVELOPE_OVERHEAD + 4 * INT + ITEM + MAX_OPERATION


def largest(n: int, window: int, max_batch_bytes: int, batch_size: int,
            chunk_size: int) -> dict[str, int]:
    """Worst-case bytes of every message kind a replica of this configuration builds."""
    return {
        "preprepare": batch_message(max_batch_bytes, batch_size),
        "batch_body": batch_message(max_batch_bytes, batch_size),
        "commit_proof": commit_proof(n, max_batch_bytes, batch_size),
        "viewchange": view_change(n, window),
        "newview": new_view(n, window),
        "stable_checkpoint": ENVELOPE_OVERHEAD + 3 * INT + DIGEST + checkpoint_proof(n),
        "viewchange_fetch": ENVELOPE_OVERHEAD + 3 * INT + ITEM + quorum_size(n) * DIGEST,
        "state_chunk": state_chunk(chunk_size),
        "reply": reply(),
    }

"""State transfer against lying and silent sources."""

from consensus.statemachine import state_digest
from consensus.statetransfer import StateFetch, fetch_order, serve_chunk
from protocol.messages.pbft import StateChunk

SNAP = bytes(range(256)) * 3
DIGEST = state_digest(SNAP)
A, B = b"a" * 32, b"b" * 32


def test_chunks_assemble_and_a_liar_is_skipped():
    fetch = StateFetch(1, 1, 8, DIGEST, [A, B], retry_after=1.0, max_bytes=10_000)
    to, req = fetch.poll(0.0)
    assert to == A and req.offset == 0
    junk = StateChunk(1, 1, 8, DIGEST, 0, len(SNAP), b"\x00" * len(SNAP))
    snap, nxt = fetch.on_chunk(A, junk, 0.1)
    assert snap is None and nxt[0] == B  # digest mismatch: next source
    offset = 0
    while True:
        chunk = serve_chunk(1, 1, 8, DIGEST, SNAP, offset, 100)
        snap, nxt = fetch.on_chunk(B, chunk, 0.2)
        if snap is not None:
            break
        offset = nxt[1].offset
    assert snap == SNAP


def test_silence_moves_on_and_oversized_claims_are_refused():
    fetch = StateFetch(1, 1, 8, DIGEST, [A, B], retry_after=1.0, max_bytes=100)
    assert fetch.poll(0.0)[0] == A
    assert fetch.poll(0.5) is None
    assert fetch.poll(1.5)[0] == B
    huge = StateChunk(1, 1, 8, DIGEST, 0, 10**9, b"x")
    snap, nxt = fetch.on_chunk(B, huge, 1.6)
    assert snap is None and nxt[0] == A
    assert fetch.on_chunk(B, huge, 1.7) == (None, None)  # not the source asked


def test_fetch_order_rotates_by_the_askers_index_and_asks_the_primary_last():
    signers = [bytes([i]) * 32 for i in range(5)]
    me, primary = signers[2], signers[0]
    assert fetch_order(signers, me, primary, 0) == [signers[1], signers[3], signers[4], primary]
    assert fetch_order(signers, me, primary, 1) == [signers[3], signers[4], signers[1], primary]
    assert fetch_order(signers, me, primary, 4) == [signers[3], signers[4], signers[1], primary]
    assert fetch_order([primary, me], me, primary, 3) == [primary]  # the primary if no one else
    assert fetch_order([me], me, primary, 0) == []

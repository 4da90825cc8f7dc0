import pytest

from daemon.blobs.store import BlobStore, BlobTooLarge, blob_hash


def test_put_get_read_and_damage(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    data = b"module bytes" * 1000
    h = store.put(data)
    assert h == blob_hash(data) and store.has(h) and store.get(h) == data
    assert store.read(h, 5, 10) == (data[5:15], len(data))
    store.path(h).write_bytes(b"tampered")
    assert store.get(h) is None and not store.has(h)  # damaged: dropped, never served
    assert store.read(b"\0" * 32, 0, 1) is None


def test_limits_and_eviction(tmp_path):
    store = BlobStore(tmp_path / "b", cap_bytes=3000, max_blob=2000)
    with pytest.raises(BlobTooLarge):
        store.put(b"x" * 2001)
    pinned = store.put(b"p" * 1000, pin=True)
    hashes = [store.put(bytes([i]) * 1000) for i in range(4)]
    assert store.has(pinned)
    assert sum(store.has(h) for h in hashes) <= 2

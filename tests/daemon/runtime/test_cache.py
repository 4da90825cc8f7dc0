"""The module cache: compile once per node, load from disk after, never trust a bad artifact."""

from __future__ import annotations

import pytest

from daemon.runtime.cache import ModuleUnavailable, module_hash
from daemon.runtime.outcome import Limits
from daemon.runtime.sandbox import Sandbox
from protocol.messages.tasks import TaskStatus
from tests.daemon.runtime import modules


def test_second_sandbox_loads_from_disk_without_compiling(tmp_path):
    wasm = modules.PI.read_bytes()
    digest = module_hash(wasm)
    first = Sandbox(tmp_path)
    assert first.cache.get(digest, wasm).source == "compiled"
    assert first.cache.get(digest).source == "memory"
    second = Sandbox(tmp_path)
    entry = second.cache.get(digest)  # no bytes: must come from disk
    assert entry.source == "disk" and second.cache.compiled == 0 and second.cache.loaded == 1
    out = second.run(digest, None, b"7 1000\n", Limits())
    assert out.output == b"763 1000\n"
    assert (tmp_path.stat().st_mode & 0o777) == 0o700


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_artifacts_are_ignored_and_rebuilt(tmp_path, damage):
    wasm = modules.empty()
    digest = module_hash(wasm)
    Sandbox(tmp_path).cache.get(digest, wasm)
    path = tmp_path / f"{digest.hex()}.cwasm"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    else:
        path.write_bytes(b"")
    fresh = Sandbox(tmp_path)
    with pytest.raises(ModuleUnavailable):
        fresh.cache.get(digest)
    assert fresh.cache.get(digest, wasm).source == "compiled"
    assert Sandbox(tmp_path).cache.get(digest).source == "disk"


def test_artifacts_from_another_engine_configuration_are_not_loaded(tmp_path):
    wasm = modules.empty()
    digest = module_hash(wasm)
    Sandbox(tmp_path, max_wasm_stack=256 * 1024).cache.get(digest, wasm)
    other = Sandbox(tmp_path)  # a different stack limit is a different fingerprint
    with pytest.raises(ModuleUnavailable):
        other.cache.get(digest)


def test_an_artifact_for_another_hash_is_not_loaded(tmp_path):
    a, b = modules.empty(), modules.infinite_loop()
    Sandbox(tmp_path).cache.get(module_hash(a), a)
    (tmp_path / f"{module_hash(a).hex()}.cwasm").rename(tmp_path / f"{module_hash(b).hex()}.cwasm")
    with pytest.raises(ModuleUnavailable):
        Sandbox(tmp_path).cache.get(module_hash(b))


def test_lru_keeps_the_most_recent_modules():
    cache = Sandbox(cache_capacity=2).cache
    blobs = [modules.exit_with(i) for i in range(3)]
    digests = [module_hash(b) for b in blobs]
    cache.get(digests[0], blobs[0])
    cache.get(digests[1], blobs[1])
    cache.get(digests[0])  # touch 0: 1 is now the oldest
    cache.get(digests[2], blobs[2])
    assert digests[0] in cache and digests[2] in cache and digests[1] not in cache
    with pytest.raises(ModuleUnavailable):
        cache.get(digests[1])


def test_refused_modules_are_not_written_to_disk(tmp_path):
    wasm = modules.imports("env", "something")
    out = Sandbox(tmp_path).run(module_hash(wasm), wasm, b"", Limits())
    assert out.status is TaskStatus.REFUSED
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ModuleUnavailable):
        Sandbox(tmp_path).run(module_hash(wasm), None, b"", Limits())


def test_runtime_id_names_the_engine_and_the_pool_reports_the_workers_one():
    from daemon.runtime.pool import runtime_id

    assert Sandbox().runtime_id == runtime_id()
    assert Sandbox(max_wasm_stack=256 * 1024).runtime_id != runtime_id()

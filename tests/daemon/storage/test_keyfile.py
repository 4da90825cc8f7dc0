import os
import stat

import pytest

from daemon.storage.keyfile import KeyFileError, load_identity, load_or_create_identity


def test_created_with_mode_0600_and_loaded_back(tmp_path):
    old = os.umask(0)  # even with a permissive umask the file must be 0600
    try:
        ident, created = load_or_create_identity(tmp_path)
    finally:
        os.umask(old)
    assert created
    path = tmp_path / "node.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = load_or_create_identity(tmp_path)
    assert not created_again
    assert again.node_id == ident.node_id and again.seed == ident.seed


def test_world_readable_key_is_refused_with_the_fix(tmp_path):
    load_or_create_identity(tmp_path)
    path = tmp_path / "node.key"
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_identity(path)


def test_damaged_key_file_says_so(tmp_path):
    path = tmp_path / "node.key"
    path.write_bytes(b"garbage\n")
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="damaged"):
        load_identity(path)

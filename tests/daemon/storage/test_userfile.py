"""Bounded reads of files users name: the size is checked before the bytes are in memory."""

import os
import socket

import pytest

from daemon.storage.userfile import UserFileError, read_capped, read_capped_text


def test_regular_files_up_to_the_cap(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert read_capped(f, 100) == b"x" * 100
    with pytest.raises(UserFileError, match="^is 100 bytes; the limit is 99$"):
        read_capped(f, 99)
    assert read_capped_text(f, 100) == "x" * 100
    f.write_bytes(b"\xff\xfe")
    with pytest.raises(UserFileError, match="not UTF-8"):
        read_capped_text(f, 100)


def test_what_is_not_a_regular_file_is_refused_without_reading(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # opening it blocking would wait for a writer forever
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        for path, kind in (("/dev/zero", "a character device"), (tmp_path / "fifo", "a FIFO"),
                           (tmp_path, "a directory"), (tmp_path / "sock", "")):
            with pytest.raises(UserFileError) as err:
                read_capped(path, 1 << 20)
            assert "not a regular file" in str(err.value) and kind in str(err.value)
    finally:
        sock.close()


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(UserFileError) as err:
        read_capped(tmp_path / "nope", 10)
    assert err.value.missing and str(err.value) == "does not exist"
    f = tmp_path / "secret"
    f.write_bytes(b"x")
    f.chmod(0)
    if os.geteuid() != 0:  # root reads anything
        with pytest.raises(UserFileError, match="^cannot be read: permission denied$"):
            read_capped(f, 10)

"""Sticky-file envelopes and kept frames: round trips, bounds, and hostile inputs refused."""

from __future__ import annotations

import hashlib

import pytest

from protocol import sticky
from protocol.sticky import StickyError, StickyFile, StickyInput

NODE = "12D3KooW" + "A" * 44


def test_an_envelope_round_trips_and_an_ordinary_input_is_not_one():
    f = StickyFile("residual", hashlib.sha256(b"e").digest(), 1, (NODE, "12D3KooW" + "B" * 44))
    env = StickyInput(b"shard 2 int8 1 7 ef=abc", (f,), keep=4096)
    data = env.encode()
    assert sticky.is_envelope(data) and sticky.decode(data) == env
    assert sticky.decode(b"shard 2 int8 1 7") is None
    assert sticky.decode(StickyInput(b"x").encode()) == StickyInput(b"x")


H = "ab" * 32


@pytest.mark.parametrize("header, match", [
    ("", "unknown"),
    ("file=r:" + H + ":1:" + NODE, "keep=<bytes>"),
    ("keep=1 keep=2", "repeated"),
    ("keep=-1", "unknown or repeated"),
    ("keep=0 size=3", "unknown"),
    ("keep=0 file=r:" + H + ":1", "name:sha256:size:holder"),
    ("keep=0 file=../r:" + H + ":1:" + NODE, "name"),
    ("keep=0 file=.r:" + H + ":1:" + NODE, "name"),
    ("keep=0 file=r:" + H[:-2] + ":1:" + NODE, "name:sha256"),
    ("keep=0 file=r:" + H + ":x:" + NODE, "name:sha256"),
    ("keep=0 file=r:" + H + ":1:", "not a node id"),
    ("keep=0 file=r:" + H + ":1:10.0.0.1", "not a node id"),
    ("keep=0 file=r:" + H + ":1:" + ",".join([NODE] * 9), "holders"),
    ("keep=0" + " file=r:" + H + ":1:" + NODE + " file=r:" + H + ":1:" + NODE, "twice"),
    ("keep=0" + "".join(f" file=r{i}:{H}:1:{NODE}" for i in range(5)), "more than 4"),
    (f"keep={sticky.MAX_FILE + 1}", "keep must be"),
    ("keep=0 caf\u00e9", "ASCII"),
])
def test_a_malformed_envelope_is_refused_in_one_line(header, match):
    data = sticky.MAGIC + header.encode() + sticky.SEPARATOR + b"stdin"
    with pytest.raises(StickyError, match=match) as err:
        sticky.decode(data)
    assert "\n" not in str(err.value)


def test_sizes_are_bounded_before_reading():
    with pytest.raises(StickyError, match="header ends"):
        sticky.decode(sticky.MAGIC + b"keep=0" + b" " * sticky.MAX_HEADER + sticky.SEPARATOR)
    with pytest.raises(StickyError, match="stdin is"):
        sticky.decode(sticky.MAGIC + b"keep=0" + sticky.SEPARATOR + b"x" * (sticky.MAX_STDIN + 1))
    many = [NODE] * (sticky.MAX_HOLDERS + 1)
    with pytest.raises(StickyError, match="holders"):
        StickyInput(b"", (StickyFile("r", b"x" * 32, 1, tuple(many)),)).encode()


def test_an_envelope_is_one_line_of_text():
    f = StickyFile("residual", hashlib.sha256(b"e").digest(), 1, (NODE,))
    text = StickyInput(b"s/0 2 int8 1 7 ef=new", (f,), keep=40).encode().decode("ascii")
    assert "\n" not in text and text.startswith("@novacron-sticky/1 keep=40 file=residual:")
    assert text.endswith(" -- s/0 2 int8 1 7 ef=new")


def test_a_kept_frame_is_split_only_when_allowed_and_well_formed():
    out = sticky.kept_frame(b"residual") + b"the output"
    assert sticky.split_kept(out, keep=8) == (b"residual", b"the output")
    assert sticky.split_kept(out, keep=7) == (None, out)  # more than the task may keep
    assert sticky.split_kept(out, keep=0) == (None, out)  # an input that allowed no keeping
    assert sticky.split_kept(b"plain output", keep=100) == (None, b"plain output")
    short = sticky.KEEP_MAGIC + sticky.KEEP_LENGTH.pack(50) + b"abc"
    assert sticky.split_kept(short, keep=100) == (None, short)
    assert sticky.split_kept(sticky.KEEP_MAGIC + b"\x00", keep=100) == (
        None, sticky.KEEP_MAGIC + b"\x00")


def test_the_task_script_writes_the_frame_the_worker_reads():
    from daemon.fl.sandbox import fl_task
    assert fl_task.KEEP_MAGIC == sticky.KEEP_MAGIC
    assert fl_task.RESIDUAL == f"{sticky.STICKY_DIR}/residual"

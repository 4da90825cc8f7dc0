import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.p2p.errors import P2PError
from daemon.p2p.framing import FrameDecoder, FrameTooLarge, TruncatedFrame, encode_frame
from protocol.errors import RemoteProtocolError


def test_frames_come_back_in_order_from_one_buffer():
    wire = b"".join(encode_frame(p, 100) for p in [b"a", b"", b"xyz" * 10])
    assert FrameDecoder(100).feed(wire) == [b"a", b"", b"xyz" * 10]


@given(
    payloads=st.lists(st.binary(max_size=300), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
def test_any_chunking_of_the_stream_gives_the_same_frames(payloads, cuts):
    wire = b"".join(encode_frame(p, 300) for p in payloads)
    points = sorted({0, len(wire), *(c for c in cuts if c <= len(wire))})
    decoder = FrameDecoder(300)
    out = []
    for a, b in zip(points, points[1:]):
        out += decoder.feed(wire[a:b])
    decoder.eof()  # ended on a frame boundary: no error
    assert out == payloads


def test_oversized_length_is_refused_from_the_header_alone():
    decoder = FrameDecoder(1000)
    header_only = (1001).to_bytes(4, "big")
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(header_only)  # no body byte sent: refused before buffering it
    assert isinstance(info.value, RemoteProtocolError) and info.value.reason == "frame_too_large"


def test_a_frame_at_the_cap_is_fine():
    assert FrameDecoder(1000).feed(encode_frame(b"x" * 1000, 1000)) == [b"x" * 1000]


@pytest.mark.parametrize("wire", [b"\x00\x00", encode_frame(b"hello", 10)[:-1]])
def test_stream_ending_inside_a_frame_is_a_truncated_frame(wire):
    decoder = FrameDecoder(10)
    assert decoder.feed(wire) == []
    with pytest.raises(TruncatedFrame) as info:
        decoder.eof()
    assert info.value.reason == "truncated_frame"


def test_want_says_how_many_bytes_finish_the_current_piece():
    decoder = FrameDecoder(10)
    assert decoder.want() == 4
    decoder.feed(b"\x00\x00\x00\x05he")
    assert decoder.want() == 3


def test_encoding_an_oversized_frame_is_our_error():
    with pytest.raises(P2PError, match="over the 4-byte cap"):
        encode_frame(b"12345", 4)

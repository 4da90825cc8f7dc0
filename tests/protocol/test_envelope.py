import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from protocol.canonical import packb, unpackb
from protocol.envelope import (
    HEADER_SIZE,
    EnvelopeOpener,
    EnvelopeSealer,
    open_envelope,
    peek_type,
    seal,
    seal_channel,
)
from protocol.errors import (
    BadSignature,
    LocalProtocolError,
    MalformedMessage,
    MessageTooLarge,
    RemoteProtocolError,
    ReplayedMessage,
    StaleMessage,
    UnknownMessageType,
    UnsupportedVersion,
    WrongNetwork,
)
from protocol.identity import NodeIdentity
from protocol.messages.pbft import Prepare
from protocol.messages.blobs import BlobChunk
from protocol.replay import ReplayWindow
from protocol.schema import MessageRegistry
from tests.protocol.strategies import any_message

NET = "novacron-test"
ALICE = NodeIdentity(random.Random(1).randbytes(32))
MALLORY = NodeIdentity(random.Random(2).randbytes(32))
PREP = Prepare(shard=1, epoch=2, view=3, seq=4, digest=b"\x07" * 32, vote=b"\x08" * 64)


def sealed(msg=PREP, seq=1, ident=ALICE, network=NET, ts=1_000_000, context=9):
    return seal(ident, network, msg, context=context, seq=seq, timestamp_ms=ts)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(any_message(), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_every_message_round_trips(msg, context, seq):
    data = seal(ALICE, NET, msg, context=context, seq=seq, timestamp_ms=5)
    env = open_envelope(data, network=NET)
    assert env.body == msg
    assert (env.sender, env.context, env.seq, env.timestamp_ms) == (ALICE.public_key, context, seq, 5)
    assert env.sender_id == ALICE.node_id
    assert env.to_bytes() == data


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(any_message(), st.binary(max_size=200))
def test_peek_type_names_what_an_envelope_carries_and_nothing_else(msg, junk):
    """Counting sent messages by kind reads the type without decoding or checking the rest."""
    assert peek_type(seal(ALICE, NET, msg, context=1, seq=1, timestamp_ms=5)) == msg.TYPE
    if junk[:2] != sealed()[:2]:
        assert peek_type(junk) == "?"  # junk never raises
    assert peek_type(sealed()[:HEADER_SIZE + 3]) == "?"


@settings(max_examples=300)
@given(st.data())
def test_any_flipped_bit_is_rejected(data):
    raw = bytearray(sealed())
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(RemoteProtocolError):
        open_envelope(bytes(raw), network=NET)


def test_signature_for_one_type_never_verifies_as_another():
    # A type with exactly Prepare's fields, so the body decodes and only the signature differs.
    registry = MessageRegistry()
    registry.register(Prepare, Prepare.TYPE, Prepare.VERSION)
    registry.register(Prepare, "test.prepare_twin", Prepare.VERSION)
    data = sealed()
    assert open_envelope(data, network=NET, registry=registry).body == PREP
    fields = unpackb(data[HEADER_SIZE:])
    fields[2] = "test.prepare_twin"  # same fields, other type: the signature must not carry over
    forged = data[:HEADER_SIZE] + packb(fields)
    with pytest.raises(BadSignature):
        open_envelope(forged, network=NET, registry=registry)


def test_signature_for_one_network_never_verifies_on_another():
    data = sealed(network="novacron-main")
    fields = unpackb(data[HEADER_SIZE:])
    fields[1] = NET
    with pytest.raises(BadSignature):
        open_envelope(data[:HEADER_SIZE] + packb(fields), network=NET)
    with pytest.raises(WrongNetwork, match="novacron-main"):
        open_envelope(data, network=NET)


def test_sender_swap_is_rejected():
    data = sealed()
    fields = unpackb(data[HEADER_SIZE:])
    fields[3] = MALLORY.public_key
    with pytest.raises(BadSignature):
        open_envelope(data[:HEADER_SIZE] + packb(fields), network=NET)


def test_replay_window():
    opener = EnvelopeOpener(NET, replay=ReplayWindow(window=64))
    first = sealed(seq=10)
    opener.open(first)
    with pytest.raises(ReplayedMessage, match="already received"):
        opener.open(first)
    opener.open(sealed(seq=5))   # late but inside the window: fine
    opener.open(sealed(seq=100))
    with pytest.raises(ReplayedMessage, match="older than the replay window"):
        opener.open(sealed(seq=20))
    opener.open(sealed(seq=20, context=10))  # another context is another sequence space
    opener.open(sealed(seq=10, ident=MALLORY))  # and another sender too


def test_bad_signature_does_not_burn_the_sequence_number():
    opener = EnvelopeOpener(NET)
    good = bytearray(sealed(seq=3))
    bad = bytearray(good)
    bad[5] ^= 1
    with pytest.raises(BadSignature):
        opener.open(bytes(bad))
    opener.open(bytes(good))  # the forged copy did not mark seq 3 as seen


def test_sealer_numbers_messages():
    sealer = EnvelopeSealer(ALICE, NET, context=77)
    opener = EnvelopeOpener(NET)
    seqs = [opener.open(sealer.seal(PREP, timestamp_ms=1)).seq for _ in range(3)]
    assert seqs == [1, 2, 3]


def test_clock_skew():
    data = sealed(ts=1_000_000)
    open_envelope(data, network=NET, now_ms=1_000_000 + 299_000)
    with pytest.raises(StaleMessage, match="s from this node's clock"):
        open_envelope(data, network=NET, now_ms=1_000_000 + 301_000)


def test_size_caps():
    big = BlobChunk(blob=b"\x01" * 32, offset=0, total_size=10, data=b"x" * 5000)
    data = seal(ALICE, NET, big, context=1, seq=1, timestamp_ms=1)
    with pytest.raises(MessageTooLarge):
        open_envelope(data, network=NET, max_size=4096)
    with pytest.raises(LocalProtocolError, match="send large data as a blob"):
        seal(ALICE, NET, big, context=1, seq=1, timestamp_ms=1, max_size=4096)


def _with_fields(mutate):
    data = sealed()
    fields = unpackb(data[HEADER_SIZE:])
    mutate(fields)
    return data[:HEADER_SIZE] + packb(fields)


def test_unknown_type_and_version_are_named():
    with pytest.raises(UnknownMessageType, match="'pbft.nonsense'"):
        open_envelope(_with_fields(lambda f: f.__setitem__(2, "pbft.nonsense")), network=NET)
    with pytest.raises(UnsupportedVersion, match="version 7 is not supported .*speaks v2"):
        open_envelope(_with_fields(lambda f: f.__setitem__(0, 7)), network=NET)


@pytest.mark.parametrize("mutate,match", [
    (lambda f: f.__setitem__(7, [1, 2]), "expected 6 fields"),
    (lambda f: f[7].__setitem__(4, b"short"), "digest: expected exactly 32 bytes"),
    (lambda f: f[7].__setitem__(0, -1), "shard: -1 is outside"),
    (lambda f: f[7].__setitem__(2, True), "view: expected integer, got bool"),
    (lambda f: f.__setitem__(3, b"k"), "32-byte Ed25519 public key"),
    (lambda f: f.__setitem__(5, -1), "seq must be an integer"),
    (lambda f: f.append(1), "array of 8 fields"),
])
def test_malformed_fields_get_clear_errors(mutate, match):
    with pytest.raises(MalformedMessage, match=match):
        open_envelope(_with_fields(mutate), network=NET)


def test_non_canonical_encoding_is_rejected():
    import msgpack

    data = sealed()
    fields = unpackb(data[HEADER_SIZE:])
    # Same values, but the seq as a 64-bit int instead of its shortest form.
    payload = packb(fields)
    longer = payload.replace(msgpack.packb(fields[5]), b"\xcf" + fields[5].to_bytes(8, "big"), 1)
    assert longer != payload and unpackb(longer) == fields
    with pytest.raises(MalformedMessage, match="canonical"):
        open_envelope(data[:HEADER_SIZE] + longer, network=NET)


@pytest.mark.parametrize("junk", [b"", b"NC", b"XX" + b"\x01" * 100, b"NC\x02" + b"\x00" * 100,
                                  b"NC\x01" + b"\x00" * 64 + b"\xc1"])
def test_junk(junk):
    with pytest.raises(RemoteProtocolError):
        open_envelope(junk, network=NET)


def test_unsorted_map_inside_a_free_form_field_is_not_canonical():
    import msgpack

    from protocol.messages.capability import CapabilityAnnounce

    msg = CapabilityAnnounce(ALICE.node_id, "0.1.0", 2, 1024, ("wasm32-wasi",), (), {"a": 1, "b": 2},
                             None, 1, 0, "d", 1, 1)
    data = sealed(msg)
    fields = unpackb(data[HEADER_SIZE:])
    fields[7][6] = {"b": 2, "a": 1}  # same map, keys out of order
    payload = msgpack.packb(fields, use_bin_type=True)
    with pytest.raises(MalformedMessage, match="canonical"):
        open_envelope(data[:HEADER_SIZE] + payload, network=NET)


def test_a_sender_its_channel_authenticated_is_taken_without_its_signature_and_no_one_else():
    """``channel_sender``: the transport proved who wrote the bytes; only that sender skips
    the signature check, and everything else about the envelope is still checked."""
    raw = bytearray(sealed())
    raw[3] ^= 1  # the signature's first byte
    bad = bytes(raw)
    with pytest.raises(BadSignature):
        open_envelope(bad, network=NET)
    assert open_envelope(bad, network=NET, channel_sender=ALICE.public_key).body == PREP
    with pytest.raises(BadSignature):
        open_envelope(bad, network=NET, channel_sender=MALLORY.public_key)
    fields = unpackb(bytes(raw[HEADER_SIZE:]))
    fields[3] = MALLORY.public_key  # names another sender: the channel vouches for Alice only
    with pytest.raises(BadSignature):
        open_envelope(bad[:HEADER_SIZE] + packb(fields), network=NET,
                      channel_sender=ALICE.public_key)
    with pytest.raises(WrongNetwork):
        open_envelope(bad, network="novacron-other", channel_sender=ALICE.public_key)
    opener = EnvelopeOpener(NET, replay=ReplayWindow(window=64))
    opener.open(bad, channel_sender=ALICE.public_key)
    with pytest.raises(ReplayedMessage):
        opener.open(bad, channel_sender=ALICE.public_key)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(any_message(), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_a_channel_frame_round_trips_from_its_channel_and_is_98_bytes_smaller(msg, context, seq):
    """Format 2: no sender, no signature; the channel's peer is the sender."""
    frame = seal_channel(NET, msg, context=context, seq=seq, timestamp_ms=5)
    signed = seal(ALICE, NET, msg, context=context, seq=seq, timestamp_ms=5)
    assert len(signed) - len(frame) == 64 + 34 and peek_type(frame) == msg.TYPE
    env = open_envelope(frame, network=NET, channel_sender=ALICE.public_key, channel_frames=True)
    assert (env.body, env.sender_id, env.context, env.seq) == (msg, ALICE.node_id, context, seq)


def test_a_channel_frame_is_taken_only_where_asked_for_and_is_no_evidence():
    """Unsigned frames open only on a protocol that asks for them (soft state) and only with
    the stream's peer as sender; a vote taken on the channel's word must stay signed, and a
    channel frame can never be forwarded or shown to a third party."""
    frame = seal_channel(NET, PREP, context=9, seq=1, timestamp_ms=1_000_000)
    for kwargs in ({}, {"channel_sender": ALICE.public_key}, {"channel_frames": True}):
        with pytest.raises(MalformedMessage, match="channel frame"):
            open_envelope(frame, network=NET, **kwargs)
    env = open_envelope(frame, network=NET, channel_sender=MALLORY.public_key, channel_frames=True)
    assert env.sender == MALLORY.public_key  # whoever's stream it came on wrote it
    with pytest.raises(LocalProtocolError, match="unsigned"):
        env.to_bytes()
    with pytest.raises(WrongNetwork):
        open_envelope(frame, network="novacron-other", channel_sender=ALICE.public_key,
                      channel_frames=True)
    opener = EnvelopeOpener(NET, replay=ReplayWindow(window=64))
    opener.open(frame, channel_sender=ALICE.public_key, channel_frames=True)
    with pytest.raises(ReplayedMessage):
        opener.open(frame, channel_sender=ALICE.public_key, channel_frames=True)
    with pytest.raises(StaleMessage):
        open_envelope(frame, network=NET, now_ms=10**9, channel_sender=ALICE.public_key,
                      channel_frames=True)
    fields = unpackb(frame[3:])
    with pytest.raises(MalformedMessage, match="7 fields"):
        open_envelope(frame[:3] + packb(fields + [1]), network=NET,
                      channel_sender=ALICE.public_key, channel_frames=True)
    with pytest.raises(MessageTooLarge):
        open_envelope(frame, network=NET, max_size=len(frame) - 1,
                      channel_sender=ALICE.public_key, channel_frames=True)
    with pytest.raises(LocalProtocolError, match="cap"):
        seal_channel(NET, PREP, context=9, seq=1, timestamp_ms=1_000_000, max_size=len(frame) - 1)

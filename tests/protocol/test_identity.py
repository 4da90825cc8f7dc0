import random

import pytest
from hypothesis import given, strategies as st

from protocol.errors import LocalProtocolError, MalformedMessage, RemoteProtocolError
from protocol.identity import (
    NodeIdentity,
    PublicIdentity,
    node_id_from_public_key,
    public_key_from_node_id,
    verify_signature,
)


def _identity(seed: int) -> NodeIdentity:
    return NodeIdentity(random.Random(seed).randbytes(32))


@pytest.mark.parametrize("seed", range(20))
def test_node_id_equals_libp2p_peer_id(seed):
    import nacl.signing
    from libp2p.crypto.ed25519 import Ed25519PrivateKey
    from libp2p.peer.id import ID

    ident = _identity(seed)
    libp2p_key = Ed25519PrivateKey(nacl.signing.SigningKey(ident.seed))
    assert ident.node_id == ID.from_pubkey(libp2p_key.get_public_key()).to_base58()
    assert ident.node_id.startswith("12D3KooW")


def test_libp2p_signature_verifies_with_our_identity():
    import nacl.signing
    from libp2p.crypto.ed25519 import Ed25519PrivateKey

    ident = _identity(1)
    sig = Ed25519PrivateKey(nacl.signing.SigningKey(ident.seed)).sign(b"hello")
    assert ident.public.verify(b"hello", sig)
    assert ident.sign(b"hello") == sig  # Ed25519 is deterministic: one key, one signer


@given(st.binary(min_size=32, max_size=32))
def test_node_id_round_trips_to_public_key(seed):
    ident = NodeIdentity(seed)
    assert public_key_from_node_id(ident.node_id) == ident.public_key
    assert PublicIdentity(ident.public_key).node_id == ident.node_id


def test_sign_and_verify():
    ident = _identity(2)
    sig = ident.sign(b"data")
    assert ident.public.verify(b"data", sig)
    assert not ident.public.verify(b"datA", sig)
    assert not _identity(3).public.verify(b"data", sig)
    assert not verify_signature(ident.public_key, b"data", sig[:-1])
    assert not verify_signature(b"\x00" * 32, b"data", sig)


def test_bad_node_ids_raise_remote_errors():
    for bad in ["", "0OIl", "12D3KooW", "Qm" + "1" * 44, "x" * 500]:
        with pytest.raises(RemoteProtocolError):
            public_key_from_node_id(bad)


def test_key_file_round_trip_and_damage():
    ident = _identity(4)
    data = ident.to_key_file()
    assert ident.node_id in data.decode()
    assert NodeIdentity.from_key_file(data).public_key == ident.public_key
    for damaged in [b"", b"\xff\xfe", b"novacron-ed25519-seed-v1 !!!!\n",
                    b"novacron-ed25519-seed-v1 AAAA\n", b"other-format abc\n"]:
        with pytest.raises(LocalProtocolError):
            NodeIdentity.from_key_file(damaged)


def test_wrong_lengths():
    with pytest.raises(LocalProtocolError):
        NodeIdentity(b"short")
    with pytest.raises(LocalProtocolError):
        node_id_from_public_key(b"\x01" * 31)
    with pytest.raises(MalformedMessage):
        PublicIdentity(b"\x01" * 33)


def test_repr_hides_secret():
    ident = _identity(5)
    assert ident.seed.hex() not in repr(ident)

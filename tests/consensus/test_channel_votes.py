"""Votes taken on their channel's word (``Ed25519Verifier.open_direct``), and the evidence a
replica offers when one of them equivocates."""

import pytest

from consensus.actions import Misbehaviour
from consensus.evidence import Equivocation, check_equivocation
from consensus.quorum import prepare_bytes
from protocol.envelope import HEADER_SIZE
from protocol.errors import BadSignature
from protocol.identity import node_id_from_public_key
from protocol.messages.pbft import Commit, PrePrepare, Prepare, Request
from testnet.pbft_sim.bus import Bus


def garbled(raw: bytes) -> bytes:
    """``raw`` with its envelope signature spoiled (the body, and any vote in it, intact)."""
    sig = bytearray(raw[3:HEADER_SIZE])
    sig[0] ^= 1
    return raw[:3] + bytes(sig) + raw[HEADER_SIZE:]


def test_a_vote_from_its_own_connection_needs_no_envelope_signature_and_nothing_else_skips_it():
    bus = Bus(4)
    alice, bob = bus.cfg.committee[1], bus.cfg.committee[2]
    me, other = node_id_from_public_key(alice), node_id_from_public_key(bob)
    signer = bus.signer(alice)
    digest = b"\x01" * 32
    vote = signer.sign_vote(prepare_bytes(3, 1, 0, 1, digest))
    for msg in (Prepare(3, 1, 0, 1, digest, vote), Commit(3, 1, 0, 1, digest, vote)):
        raw = garbled(signer.seal(msg, 0.0))
        assert bus.verifier.open_direct(raw, me).body == msg
        with pytest.raises(BadSignature):
            bus.verifier.open_direct(raw, other)  # relayed, or another peer's claim: checked
        with pytest.raises(BadSignature):
            bus.verifier.open(raw)
    request = signer.seal(Request(3, 1, 7, b"op"), 0.0)
    pre = signer.seal(PrePrepare(3, 1, 0, 1, digest, (request,), vote), 0.0)
    for raw in (request, pre):  # kept and forwarded as proof: always checked
        assert bus.verifier.open_direct(raw, me).sender == alice
        with pytest.raises(BadSignature):
            bus.verifier.open_direct(garbled(raw), me)


@pytest.mark.parametrize("spoil", [False, True])
def test_an_equivocating_prepare_is_evidence_only_when_both_envelopes_verify(spoil):
    bus = Bus(4)
    replica = bus.replica(1)
    offender = bus.cfg.committee[2]
    signer = bus.signer(offender)
    sent = []
    for digest in (b"\x01" * 32, b"\x02" * 32):
        raw = signer.seal(Prepare(3, 1, 0, 1, digest, signer.sign_vote(
            prepare_bytes(3, 1, 0, 1, digest))), 0.0)
        sent.append(garbled(raw) if spoil and not sent else raw)
    blame = []
    for raw in sent:
        env = bus.verifier.open_direct(raw, node_id_from_public_key(offender))
        blame += [a for a in replica.receive(env) if isinstance(a, Misbehaviour)]
    (m,) = blame
    assert (m.offender, m.reason) == (offender, "equivocation")
    if spoil:  # true here (its channel proved who sent it), but no proof for anyone else
        assert m.evidence is None
    else:
        assert isinstance(m.evidence, Equivocation)
        assert check_equivocation(m.evidence, bus.verifier) is None

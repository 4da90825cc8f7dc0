"""Quorum certificates: compact, checkable offline with the committee list, view-bound."""

import random
from dataclasses import replace

from consensus.evidence import check_vote_conflict, conflicting_qcs
from consensus.quorum import make_qc, quorum_size, signer_indices, verify_qc, vote_bytes
from protocol import domains
from protocol.identity import NodeIdentity

IDS = [NodeIdentity(random.Random(i).randbytes(32)) for i in range(7)]
COMMITTEE = tuple(i.public_key for i in IDS)


def votes(digest, view=0, who=range(7)):
    data = vote_bytes(1, 2, view, 3, digest)
    return {i: IDS[i].sign(domains.QUORUM_VOTE + data) for i in who}


def test_quorum_sizes_intersect_in_f_plus_1():
    for n in range(1, 40):
        f, q = (n - 1) // 3, quorum_size(n)
        assert 2 * q - n >= f + 1 and q <= n - f
    assert [quorum_size(n) for n in (4, 7, 10, 16)] == [3, 5, 7, 11]


def test_certificate_is_compact_and_verifies_offline():
    qc = make_qc(1, 2, 0, 3, b"d" * 32, votes(b"d" * 32), 7)
    assert len(qc.signatures) == 5 and signer_indices(qc.signers, 7) == [0, 1, 2, 3, 4]
    assert len(qc.signers) == 1
    assert verify_qc(qc, COMMITTEE) is None
    assert verify_qc(replace(qc, view=1), COMMITTEE) is not None  # the view is signed
    assert verify_qc(replace(qc, seq=4), COMMITTEE) is not None
    assert "quorum" in verify_qc(replace(qc, signers=b"\x0f", signatures=qc.signatures[:4]),
                                 COMMITTEE)
    assert verify_qc(replace(qc, signers=b"\xff"), COMMITTEE) is not None  # index 7: no member
    assert verify_qc(qc, COMMITTEE[::-1]) is not None


def test_conflicting_certificates_name_the_members_who_signed_both():
    a = make_qc(1, 2, 0, 3, b"a" * 32, votes(b"a" * 32, who=[0, 1, 2, 3, 4]), 7)
    b = make_qc(1, 2, 0, 3, b"b" * 32, votes(b"b" * 32, who=[2, 3, 4, 5, 6]), 7)
    found = conflicting_qcs(a, b, COMMITTEE)
    assert [v.offender for v in found] == [COMMITTEE[i] for i in (2, 3, 4)]
    assert all(check_vote_conflict(v, v.offender) is None for v in found)
    assert check_vote_conflict(found[0], COMMITTEE[0]) is not None  # not someone else's votes
    assert conflicting_qcs(a, a, COMMITTEE) == []
    assert conflicting_qcs(a, replace(b, view=1), COMMITTEE) == []

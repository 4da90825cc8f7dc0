"""The new view's pre-prepares: recomputed from a quorum of view changes."""

import random

import pytest

from consensus.checkpoint import InvalidProof
from consensus.config import ReplicaConfig
from consensus.log import NULL_DIGEST, batch_digest
from consensus.crypto import MacSigner, MacVerifier
from consensus.viewchange import Cert, CheckedViewChange, check_view_change, new_view_set
from protocol.messages.pbft import PrePrepare, Prepare, PreparedProof, ViewChange

rng = random.Random(3)
KEYS = [(rng.randbytes(32), rng.randbytes(32)) for _ in range(4)]
CFG = ReplicaConfig(1, 1, tuple(pk for pk, _ in KEYS), checkpoint_interval=2, window=4)
VERIFIER = MacVerifier("t", dict(KEYS))
SIGNERS = [MacSigner(pk, sk, "t") for pk, sk in KEYS]
GENESIS = b"\x00" * 32


def vc(sender, stable=0, certs=None):
    return CheckedViewChange(sender, 5, stable, GENESIS, (), certs or {}, b"")


def test_highest_view_certificate_wins_and_gaps_get_null_batches():
    a, b = (b"A",), (b"B",)
    plan = new_view_set([
        vc(0, certs={1: Cert(1, batch_digest(a), a), 3: Cert(2, batch_digest(a), a)}),
        vc(1, certs={1: Cert(3, batch_digest(b), b)}),
        vc(2),
    ])
    assert plan.min_s == 0
    assert plan.batches == ((1, batch_digest(b), b), (2, NULL_DIGEST, ()),
                            (3, batch_digest(a), a))


def test_the_highest_stable_checkpoint_sets_the_start():
    a = (b"A",)
    plan = new_view_set([vc(0, stable=2, certs={3: Cert(1, batch_digest(a), a)}),
                         vc(1, stable=0, certs={1: Cert(1, batch_digest(a), a)}), vc(2)])
    assert plan.min_s == 2 and [s for s, _, _ in plan.batches] == [3]


def prepared(view, seq, reqs, backups):
    d = batch_digest(reqs)
    pp = SIGNERS[view % 4].seal(PrePrepare(1, 1, view, seq, d, reqs), 0)
    prepares = tuple(SIGNERS[i].seal(Prepare(1, 1, view, seq, d), 0) for i in backups)
    return PreparedProof(pp, prepares)


def test_view_change_proofs_are_checked():
    good = prepared(0, 1, (b"r",), [1, 2])
    env = VERIFIER.open(SIGNERS[3].seal(ViewChange(1, 1, 1, 0, GENESIS, (), (good,)), 0))
    checked = check_view_change(CFG, env, VERIFIER, GENESIS)
    assert checked.certs[1].digest == batch_digest((b"r",))
    bad = [prepared(0, 1, (b"r",), [1]),          # too few prepares
           prepared(0, 1, (b"r",), [1, 1]),       # the same backup twice
           prepared(0, 1, (b"r",), [0, 1]),       # the primary does not prepare
           prepared(1, 1, (b"r",), [2, 3]),       # not below the new view
           prepared(0, 9, (b"r",), [1, 2])]       # above the watermarks
    for cert in bad:
        env = VERIFIER.open(SIGNERS[3].seal(ViewChange(1, 1, 1, 0, GENESIS, (), (cert,)), 0))
        with pytest.raises(InvalidProof):
            check_view_change(CFG, env, VERIFIER, GENESIS)
    env = VERIFIER.open(SIGNERS[3].seal(ViewChange(1, 1, 1, 2, GENESIS, (), ()), 0))
    with pytest.raises(InvalidProof, match="checkpoint proof"):
        check_view_change(CFG, env, VERIFIER, GENESIS)

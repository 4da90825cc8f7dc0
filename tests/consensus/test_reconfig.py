"""Epoch handover: nothing committed is lost, nothing is executed twice."""

import pytest

from consensus.checkpoint import InvalidProof
from consensus.reconfig import Handoff, next_genesis, verify_handoff
from consensus.statemachine import KeyValueMachine, Service, state_digest
from testnet.pbft_sim.handover import run_handover


@pytest.mark.parametrize("seed", range(6))
def test_handover_keeps_every_request_exactly_once(seed):
    res = run_handover(seed)
    assert res.done, "a request was lost in the handover"
    expected = [str(sum(range(1, k + 1))).encode() for k in range(1, 9)]
    for name, results in res.results.items():
        assert results == expected, name  # running totals: no loss, no double execution
        assert res.totals[name] == 36
    assert not res.old.checker.violations and not res.new.checker.violations
    # The old committee stopped at the handoff; the new one ordered the rest.
    assert all(r.replica.service.ended for r in res.old.replicas.values())
    assert res.new.checker.commits > 0


def test_handover_with_real_signatures():
    res = run_handover(1, real_crypto=True, clients=2, requests=4)
    assert res.done and all(t == 10 for t in res.totals.values())


def test_handoff_proof_and_state_are_checked():
    res = run_handover(2, clients=1, requests=3, lossy=False)
    h, old = res.handoff, res.old.cfg.committee
    verify = res.old.keys.verifier
    verify_handoff(h, old, verify)
    with pytest.raises(InvalidProof):
        verify_handoff(h, res.new.cfg.committee, verify)  # not signed by that committee
    with pytest.raises(InvalidProof):
        verify_handoff(Handoff(h.shard, h.epoch, h.seq, b"\x00" * 32, h.proof), old, verify)
    with pytest.raises(InvalidProof, match="certified digest"):
        next_genesis(h, b"not the state", KeyValueMachine())
    open_state = Service(KeyValueMachine()).snapshot()
    with pytest.raises(InvalidProof, match="final state"):
        next_genesis(Handoff(h.shard, h.epoch, h.seq, state_digest(open_state), h.proof),
                     open_state, KeyValueMachine())

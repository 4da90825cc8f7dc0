"""Proof of work on a node key."""

import random

import pytest

from consensus.pow import check_pow, leading_zero_bits, pow_digest, solve_pow
from protocol.errors import LocalProtocolError

PK = random.Random(1).randbytes(32)


def test_solved_nonce_checks_and_is_bound_to_key_and_network():
    nonce = solve_pow("testnet", PK, 10)
    assert check_pow("testnet", PK, nonce, 10)
    assert leading_zero_bits(pow_digest("testnet", PK, nonce)) >= 10
    other = random.Random(2).randbytes(32)
    assert not all(check_pow("testnet", other, nonce + k, 10) for k in range(3))
    assert not check_pow("mainnet", PK, nonce, 10) or not check_pow("mainnet", PK, nonce + 1, 10)


def test_work_grows_with_difficulty():
    tries = [solve_pow("t", PK, d) for d in (4, 12)]
    first = next(n for n in range(1 << 20) if check_pow("t", PK, n, 12))
    assert tries[1] == first  # solve returns the first valid nonce from `start`
    assert check_pow("t", PK, tries[0], 4)


def test_bad_input_is_rejected():
    assert not check_pow("t", PK, -1, 0)
    assert not check_pow("t", PK[:5], 0, 0)
    with pytest.raises(LocalProtocolError):
        solve_pow("t", PK, 65)
    with pytest.raises(LocalProtocolError, match="no proof"):
        solve_pow("t", PK, 40, max_tries=10)

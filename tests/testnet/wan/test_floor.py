"""The network's floor under a PBFT commit: the phases' message delays, by hand."""

from __future__ import annotations

import pytest

from testnet.wan.floor import commit_floor_ms


def test_a_client_that_is_primary_waits_three_one_way_delays():
    # Four members, 10 ms access each: 20 ms one way between any two. Pre-prepare, prepare,
    # commit: the client's replica commits when the second-fastest other commit arrives.
    assert commit_floor_ms([10, 10, 10, 10], [0, 1, 2, 3], primary=0, client=0) == 60


def test_a_client_on_a_backup_adds_the_hop_to_the_primary():
    assert commit_floor_ms([10, 10, 10, 10], [0, 1, 2, 3], primary=0, client=1) == 80


def test_a_far_primary_delays_every_phase_a_far_backup_only_its_own():
    access = [10, 10, 10, 10, 10, 10, 100]  # n = 7, q = 5: one slow member is outvoted
    members = list(range(7))
    near = commit_floor_ms(access, members, primary=0, client=1)
    assert near == 80  # the slow member's votes are never among the first q
    far = commit_floor_ms(access, members, primary=6, client=1)
    assert far == 110 + 110 + 20 + 20  # to the far primary, back, prepare, commit


def test_a_committee_of_one_commits_at_once():
    assert commit_floor_ms([50], [0], primary=0, client=0) == 0


def test_the_primary_and_the_client_must_be_members():
    with pytest.raises(ValueError, match="members"):
        commit_floor_ms([10, 10, 10, 10], [0, 1, 2], primary=3, client=0)

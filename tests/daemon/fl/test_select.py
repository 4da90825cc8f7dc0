import random

import numpy as np
import pytest

from daemon.fl import FLError, select_phi, select_random, similarity, staying_power, utilities


def test_similarity_maps_cosine_to_unit_interval():
    a = {"w": np.array([1.0, 0.0], np.float32)}
    assert similarity(a, a) == pytest.approx(1.0)
    assert similarity(a, {"w": -a["w"]}) == pytest.approx(0.0)
    assert similarity(None, a) == 1.0  # unseen clients are tried


def test_staying_power_caps_at_horizon():
    assert staying_power(3600, 7200) == 0.5
    assert staying_power(1e9, 7200) == 1.0
    assert staying_power(0, 7200) == 0.0
    with pytest.raises(FLError):
        staying_power(1, 0)


def test_phi_prefers_clients_that_stay():
    phi = utilities([1.0] * 10, [1.0] * 5 + [0.05] * 5)
    rng = random.Random(7)
    counts = np.zeros(10)
    for _ in range(2000):
        for i in select_phi(rng, phi, 3):
            counts[i] += 1
    assert counts[:5].sum() > 10 * counts[5:].sum()
    assert counts[5:].sum() > 0  # never starved


def test_selection_is_seeded_sorted_and_checked():
    phi = [0.5] * 8
    assert select_phi(random.Random(1), phi, 4) == select_phi(random.Random(1), phi, 4)
    picked = select_random(random.Random(2), 8, 3)
    assert picked == sorted(picked) and len(set(picked)) == 3
    with pytest.raises(FLError, match="between 1 and the 8"):
        select_random(random.Random(2), 8, 9)
    with pytest.raises(FLError):
        select_phi(random.Random(2), phi, 0)

import numpy as np

from testnet.fl_policy import DDQN


def test_ddqn_learns_which_action_pays_per_state():
    """Two kinds of state, each with its own best action: the frozen policy must pick them."""
    agent = DDQN(seed=3, eps_decay=0.99)
    rng = np.random.default_rng(0)
    states = {0: DDQN.features(10e6, 0.05, 0.1, 40_000), 1: DDQN.features(0.05e6, 0.3, 0.1, 40_000)}
    best = {0: 1, 1: 3}
    for _ in range(3000):
        k = int(rng.integers(2))
        a = agent.act(states[k])
        agent.observe(states[k], a, 1.0 if a == best[k] else -1.0 + 0.1 * rng.normal())
    agent.learning = False
    assert agent.act(states[0]) == 1 and agent.act(states[1]) == 3

"""The link a client's level is planned on: the best of the client's earlier workers (its
update arrives over the fastest replica's link), else the expected fastest of its replicas
among the live volunteers, else the prior; and the task input that carries it."""

from __future__ import annotations

from daemon.fl.linkplan import ClientLink, client_link
from daemon.links.estimate import DEFAULT_BANDWIDTH, DEFAULT_RTT

LINKS = {
    "fast": {"low": 20e6, "rtt_ms": 1.0},
    "mid": {"low": 2e6, "rtt_ms": 30.0},
    "slow": {"low": 1e5, "rtt_ms": 250.0},
}


def test_the_clients_earlier_workers_come_first_and_the_best_of_them_counts() -> None:
    plan = client_link(["slow", "mid"], ["fast", "mid", "slow"], LINKS)
    assert (plan.basis, plan.node, plan.bandwidth, plan.rtt_s) == ("previous", "mid", 2e6, 0.03)
    assert plan.considered == 2 and "best link of its last round's workers" in plan.describe()
    assert client_link(["slow"], ["fast", "slow"], LINKS).node == "slow"


def test_without_earlier_workers_the_expected_fastest_of_the_replicas() -> None:
    plan = client_link([], ["fast", "mid", "slow"], LINKS)
    assert (plan.basis, plan.node, plan.bandwidth) == ("volunteers", "mid", 2e6)
    assert "expected fastest replica among 3" in plan.describe()
    # 2 replicas among 9 volunteers: the upper tercile, not the one best line
    many = {f"v{i}": {"low": 1e5 * (i + 1), "rtt_ms": 10.0} for i in range(9)}
    assert client_link([], list(many), many, replicas=2).node == "v5"
    assert client_link([], list(many), many, replicas=1).node == "v4"  # the median
    assert client_link([], list(many), many, replicas=8).node == "v7"
    assert client_link([], ["fast", "slow"], LINKS).node == "fast"  # one replica on each
    # earlier workers nobody has a prediction for do not count
    assert client_link(["gone"], ["fast"], LINKS).basis == "volunteers"
    # a volunteer without a prediction is not assumed to be anything
    assert client_link([], ["slow", "unmeasured"], LINKS).node == "slow"


def test_nothing_measured_plans_on_the_prior() -> None:
    plan = client_link([], ["a", "b"], {})
    assert (plan.basis, plan.node, plan.bandwidth, plan.rtt_s) == (
        "prior", None, DEFAULT_BANDWIDTH, DEFAULT_RTT)
    assert plan.as_dict()["considered"] == 0 and "prior" in plan.describe()


def test_the_task_field_is_plain_text_and_clamped() -> None:
    plan = ClientLink(123456.789, 0.0421, "volunteers", "n", 3)
    assert plan.task_field(0.25, 0.25) == "adaptive/123456/42.1/0.25/0.25"
    assert ClientLink(0.5, 0.0, "prior", None, 0).task_field(1.0, 0.1) == \
        "adaptive/1000/0.0/1.0/0.1"
    assert " " not in ClientLink(1e30, 1e9, "prior", None, 0).task_field(0.25, 0.25)

"""A testnet's ports are ones no outgoing connection can take while their node is down."""

from __future__ import annotations

import socket

from testnet.local import processes


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    low = processes._ephemeral_low()
    ports = processes.free_ports(40)
    assert len(set(ports)) == 40
    assert all(processes.LOWEST_PORT <= p < low for p in ports)
    assert all(processes.port_is_free(p) for p in ports)


def test_a_port_someone_listens_on_is_not_offered(monkeypatch):
    # A range of 40 ports, 30 of them held by listeners: what is offered must be the rest.
    monkeypatch.setattr(processes, "_ephemeral_low", lambda: processes.LOWEST_PORT + 40)
    held = []
    try:
        for port in range(processes.LOWEST_PORT, processes.LOWEST_PORT + 30):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
                s.listen()
                held.append(s)
            except OSError:  # taken already: as good as held
                s.close()
        taken = {s.getsockname()[1] for s in held}
        for _ in range(10):
            offered = processes.free_ports(5)
            assert len(set(offered)) == 5 and not set(offered) & taken
    finally:
        for s in held:
            s.close()


def test_a_range_too_narrow_to_choose_from_falls_back_to_the_kernels_picks(monkeypatch):
    monkeypatch.setattr(processes, "_ephemeral_low", lambda: processes.LOWEST_PORT + 3)
    ports = processes.free_ports(2)
    assert len(set(ports)) == 2 and all(p > 0 for p in ports)

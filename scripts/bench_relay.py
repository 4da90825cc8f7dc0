#!/usr/bin/env python3
"""Benchmark the WAN testnet's delay relay: what carrying a message costs it, beside what the
two ends of the same conversation cost, in the same run.

    sudo .venv/bin/python scripts/bench_relay.py [--connections 32] [--seconds 6] [--seed 1]

Two namespaces on the ``continent`` profile (the relay adds 20-80 ms round trips); in them,
``--connections`` TCP connections each play ping-pong with a 300-byte message (a PBFT vote's
size) for ``--seconds``: the client sends, the server echoes, the client sends again. Both
ends run in this process, one ``epoll`` loop of plain non-blocking sockets, so per round trip
they make the same socket calls as the relay does (two receives, two sends). Prints one JSON
object:

- ``relay_cpu_us_per_round_trip``: the relay process's CPU (user + system, from ``/proc``)
  over the round trips completed;
- ``ends_cpu_us_per_round_trip``: this process's CPU for the same round trips (the baseline:
  the least a Python program spends moving these messages);
- ``relay_vs_ends``: their ratio. A relay that costs more than the ends it connects is
  measuring itself, not the daemons, when 30 of them share a machine with it.

Needs root (network namespaces); removes what it creates.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from testnet.cpu import process_cpu_s  # noqa: E402
from testnet.wan import launcher  # noqa: E402
from testnet.wan.namespaces import enter  # noqa: E402

MESSAGE = 300
PORT = 5100


def ping_pong(server_ns: str, server_ip: str, client_ns: str, connections: int,
              seconds: float) -> int:
    """Round trips completed by ``connections`` ping-pongs in ``seconds``."""
    with enter(server_ns):
        listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((server_ip, PORT))
    listener.listen(connections)
    clients = []
    for _ in range(connections):
        with enter(client_ns):
            c = socket.socket()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.connect((server_ip, PORT))
        clients.append(c)
    servers = [listener.accept()[0] for _ in range(connections)]
    listener.close()
    sel = selectors.DefaultSelector()
    got = {}
    for s in servers + clients:
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(s, selectors.EVENT_READ, s in clients)
        got[s] = 0
    message = b"v" * MESSAGE
    for c in clients:
        c.send(message)
    round_trips = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            for key, _ in sel.select(0.5):
                s, is_client = key.fileobj, key.data
                data = s.recv(65536)  # type: ignore[union-attr]
                if not data:
                    raise RuntimeError("a connection closed during the benchmark")
                got[s] += len(data)
                while got[s] >= MESSAGE:
                    got[s] -= MESSAGE
                    if is_client:
                        round_trips += 1
                    s.send(message)  # type: ignore[union-attr]
    finally:
        for s in servers + clients:
            s.close()
    return round_trips


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_relay: needs root (network namespaces); run it as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-relay-") as tmp:
        directory = Path(tmp)
        wan = launcher.create(directory, 2, "continent", 0.0, 1, random.Random(args.seed))
        try:
            assert wan.relay_pid is not None
            server, client = wan.plan.nodes
            relay_before, ends_before = process_cpu_s(wan.relay_pid), time.process_time()
            round_trips = ping_pong(server.ns, server.ip, client.ns, args.connections,
                                    args.seconds)
            relay_cpu = process_cpu_s(wan.relay_pid) - relay_before
            ends_cpu = time.process_time() - ends_before
        finally:
            launcher.destroy(directory)
    relay_us = relay_cpu / round_trips * 1e6
    ends_us = ends_cpu / round_trips * 1e6
    print(json.dumps({
        "profile": "continent", "connections": args.connections, "seconds": args.seconds,
        "round_trips": round_trips,
        "relay_cpu_us_per_round_trip": round(relay_us, 1),
        "ends_cpu_us_per_round_trip": round(ends_us, 1),
        "relay_vs_ends": round(relay_us / ends_us, 2),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

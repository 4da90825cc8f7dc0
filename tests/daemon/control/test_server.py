"""The control server on a real Unix socket, with the blocking client in a worker thread."""

import json
import os
import socket
import stat

import pytest
import trio

from daemon.control.client import ControlClient, ControlError
from daemon.control.jsonrpc import NOT_FOUND, RpcError
from daemon.control.params import get, only
from daemon.control.server import ControlServer, SocketInUse, bind_control_socket


async def echo(params):
    only(params, "text")
    return {"echo": get(params, "text", str)}


async def fail(params):
    raise RpcError(NOT_FOUND, "no job 'x'; list jobs with `novacron jobs`")


async def crash(params):
    raise ZeroDivisionError("boom")


async def start_server(nursery, path):
    server = ControlServer(path)
    server.register("echo", echo)
    server.register("fail", fail)
    server.register("crash", crash)
    await nursery.start(server.run)
    return server


def call(path, method, params=None):
    with ControlClient(path, timeout=5) as c:
        return c.call(method, params)


async def test_round_trip_and_errors(tmp_path):
    path = tmp_path / "control.sock"
    async with trio.open_nursery() as nursery:
        await start_server(nursery, path)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert await trio.to_thread.run_sync(call, path, "echo", {"text": "hi"}) == {"echo": "hi"}
        for method, params, match in [
            ("echo", {}, "missing parameter 'text'"),
            ("echo", {"text": 5}, "parameter 'text' must be a string, got int"),
            ("echo", {"text": "a", "x": 1}, "unknown parameter 'x'"),
            ("nope", {}, "unknown method 'nope'"),
            ("fail", {}, "no job 'x'"),
            ("crash", {}, "internal error: ZeroDivisionError: boom"),
        ]:
            with pytest.raises(ControlError, match=match):
                await trio.to_thread.run_sync(call, path, method, params)
        nursery.cancel_scope.cancel()
    assert not path.exists()  # removed on shutdown


async def test_many_requests_on_one_connection_and_garbage(tmp_path):
    path = tmp_path / "control.sock"
    async with trio.open_nursery() as nursery:
        await start_server(nursery, path)

        def session():
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            s.sendall(b'garbage\n{"jsonrpc":"2.0","id":7,"method":"echo","params":{"text":"a"}}\n')
            data = b""
            while data.count(b"\n") < 2:
                data += s.recv(4096)
            s.close()
            return [json.loads(x) for x in data.splitlines()]

        first, second = await trio.to_thread.run_sync(session)
        assert first["error"]["code"] == -32700
        assert second == {"jsonrpc": "2.0", "id": 7, "result": {"echo": "a"}}
        nursery.cancel_scope.cancel()


def test_stale_socket_is_replaced_and_live_one_refused(tmp_path):
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: what a SIGKILLed daemon leaves
    with pytest.raises(ControlError, match="stale control socket"):
        ControlClient(path).call("status")
    live = bind_control_socket(path)
    try:
        with pytest.raises(SocketInUse, match="already running"):
            bind_control_socket(path)
    finally:
        live.close()


def test_missing_socket_message(tmp_path):
    with pytest.raises(ControlError, match="the daemon is not running .* start it with"):
        ControlClient(tmp_path / "none.sock").call("status")


def test_a_late_answer_to_a_timed_out_call_is_not_taken_for_the_next_calls(tmp_path):
    """A call that timed out may still be answered later on the same connection; the next
    call must skip that answer (by its id), not return it as its own."""
    import threading

    path = tmp_path / "s.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            f = conn.makefile("rb")
            first = json.loads(f.readline())  # not answered until the second call arrives
            second = json.loads(f.readline())
            for req, result in ((first, "late"), (second, "fresh")):
                conn.sendall(json.dumps({"jsonrpc": "2.0", "id": req["id"],
                                         "result": result}).encode() + b"\n")

    t = threading.Thread(target=serve)
    t.start()
    with ControlClient(path, timeout=0.2) as c:
        with pytest.raises(ControlError, match="did not answer"):
            c.call("slow")
        c.timeout = 10.0
        c._sock.settimeout(10.0)  # type: ignore[union-attr]
        assert c.call("next") == "fresh"
    t.join()
    srv.close()

"""JSON-RPC 2.0, one request per line: parsing and responses (pure, no I/O).

We follow the spec (https://www.jsonrpc.org/specification) with two local rules: one JSON value
per line (so ``nc -U`` and the CLI speak it trivially), and no batch requests (nothing needs
them, and a batch is an easy way to make one line cost a lot).

Error codes: the spec's -32700 parse error, -32600 invalid request, -32601 method not found,
-32602 invalid params, -32603 internal error; ours start at -32000 (see ``AppError``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from daemon.errors import DaemonError

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Application errors (documented per method in docs/control-socket.md).
NOT_READY = -32000
"""The node is still starting, or the subsystem the method needs is not running."""
NOT_FOUND = -32001
"""The job, task, peer or key named in the params does not exist."""
REJECTED = -32002
"""The request was understood but refused (bad job spec, quota, not a committee member...)."""
UNAVAILABLE = -32003
"""The network could not do it now (no quorum reachable, timed out); try again later."""

MAX_LINE = 1 << 20


class RpcError(DaemonError):
    """An error to send back to the client. ``message`` is one line a person can act on."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, message)


@dataclass(frozen=True, slots=True)
class Request:
    id: Any
    method: str
    params: dict[str, Any]
    is_notification: bool


def parse_request(line: bytes) -> Request:
    """Parse one line into a request, or raise ``RpcError`` (with the id when we know it)."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise RpcError(PARSE_ERROR, f"not valid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise RpcError(INVALID_REQUEST, "a request must be a JSON object (batches are not supported)")
    rid = obj.get("id")
    if obj.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, 'missing "jsonrpc": "2.0"', data={"id": rid})
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise RpcError(INVALID_REQUEST, '"method" must be a non-empty string', data={"id": rid})
    if rid is not None and not isinstance(rid, (str, int)) or isinstance(rid, bool):
        raise RpcError(INVALID_REQUEST, '"id" must be a string or an integer')
    params = obj.get("params", {})
    if isinstance(params, list):
        if params:
            raise RpcError(INVALID_PARAMS, "positional params are not supported; pass an object",
                           data={"id": rid})
        params = {}
    if not isinstance(params, dict):
        raise RpcError(INVALID_PARAMS, '"params" must be an object', data={"id": rid})
    return Request(rid, method, params, "id" not in obj)


def result_line(rid: Any, result: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}, separators=(",", ":")).encode() + b"\n"


def error_line(rid: Any, err: RpcError) -> bytes:
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.data is not None and not (isinstance(err.data, dict) and set(err.data) == {"id"}):
        body["data"] = err.data
    return json.dumps({"jsonrpc": "2.0", "id": rid, "error": body}, separators=(",", ":")).encode() + b"\n"


def request_line(rid: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}},
                      separators=(",", ":")).encode() + b"\n"

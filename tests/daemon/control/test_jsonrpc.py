import json

import pytest

from daemon.control.jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    PARSE_ERROR,
    RpcError,
    error_line,
    parse_request,
    result_line,
)


def test_parse_good_request():
    req = parse_request(b'{"jsonrpc":"2.0","id":3,"method":"status","params":{"a":1}}')
    assert (req.id, req.method, req.params, req.is_notification) == (3, "status", {"a": 1}, False)
    note = parse_request(b'{"jsonrpc":"2.0","method":"ping"}')
    assert note.is_notification and note.params == {}


@pytest.mark.parametrize("line,code", [
    (b"{not json", PARSE_ERROR),
    (b"\xff\xfe", PARSE_ERROR),
    (b"[]", INVALID_REQUEST),
    (b'{"id":1,"method":"x"}', INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1}', INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":true,"method":"x"}', INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}', INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"x","params":"s"}', INVALID_PARAMS),
])
def test_bad_requests(line, code):
    with pytest.raises(RpcError) as info:
        parse_request(line)
    assert info.value.code == code


def test_response_lines():
    assert json.loads(result_line(1, {"x": 2})) == {"jsonrpc": "2.0", "id": 1, "result": {"x": 2}}
    err = json.loads(error_line(1, RpcError(-32001, "no such job", {"job": "ab"})))
    assert err["error"] == {"code": -32001, "message": "no such job", "data": {"job": "ab"}}

"""The `chalice local` server as `make run` starts it: HTTP/1.1 behaviour of our adjustments.

Responses leave in one buffered write per request; these tests pin what that must not break:
interim `100 Continue` answers, several requests on one connection, JSON for unknown methods.
"""

from __future__ import annotations

import email.utils
import json
import socket
import time
from datetime import UTC, datetime
from typing import BinaryIO

from chalicelib import localserver
from tests.conftest import LocalServer

TIMEOUT = 20  # seconds; only a hang reaches it


def _connect(server: LocalServer) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return status, headers, body


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    local_server: LocalServer,
) -> None:
    body = json.dumps({"fqdn": "continue.example.com"}).encode()
    with _connect(local_server) as connection, connection.makefile("rb") as stream:
        request = _post("/certificates/root", body, "Expect: 100-continue\r\n")
        connection.sendall(request[: -len(body)])  # the headers only

        interim, _, _ = _read_response(stream)  # waits here if 100 sat in the buffer
        connection.sendall(body)
        status, response_headers, payload = _read_response(stream)

    assert interim == 100
    assert status == 201
    assert response_headers["content-type"] == "application/json"
    assert json.loads(payload)["fqdn"] == "continue.example.com"


def test_pipelined_requests_on_one_connection_are_answered_in_order(
    local_server: LocalServer,
) -> None:
    names = [f"pipe{index}.example.com" for index in range(3)]
    requests = b"".join(
        _post("/certificates/root", json.dumps({"fqdn": n}).encode()) for n in names
    )
    requests += b"GET /certificates?limit=10 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    with _connect(local_server) as connection, connection.makefile("rb") as stream:
        connection.sendall(requests)
        responses = [_read_response(stream) for _ in range(len(names) + 1)]

    assert [status for status, _, _ in responses] == [201, 201, 201, 200]
    assert [json.loads(body)["fqdn"] for _, _, body in responses[:3]] == names
    listed = [item["fqdn"] for item in json.loads(responses[3][2])["items"]]
    assert listed == sorted(names)


def test_a_keep_alive_connection_is_served_after_its_poll_for_the_next_request_ends(
    local_server: LocalServer,
) -> None:
    """The server polls briefly for the next request, then blocks: a client that pauses (here
    far longer than the poll) is answered all the same, on the same connection."""
    pause = localserver.NEXT_REQUEST_POLL_SECONDS * 100
    with _connect(local_server) as connection, connection.makefile("rb") as stream:
        answered = []
        for index in range(3):
            body = json.dumps({"fqdn": f"pause{index}.example.com"}).encode()
            connection.sendall(_post("/certificates/root", body))
            status, _, payload = _read_response(stream)
            answered.append((status, json.loads(payload)["fqdn"]))
            time.sleep(pause)

    assert answered == [(201, f"pause{index}.example.com") for index in range(3)]


def test_an_unknown_method_gets_a_json_405_and_its_body_is_never_run_as_a_request(
    local_server: LocalServer,
) -> None:
    smuggled = _post("/certificates/root", json.dumps({"fqdn": "smuggled.example.com"}).encode())
    request = (
        f"PROPFIND /certificates HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n"
    ).encode() + smuggled

    with _connect(local_server) as connection, connection.makefile("rb") as stream:
        connection.sendall(request)
        status, headers, body = _read_response(stream)
        rest = stream.read()  # the server closes the connection: nothing more is answered

    assert status == 405
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert "POST" in headers["allow"]
    assert json.loads(body) == {
        "Code": "MethodNotAllowedError",
        "Message": "Unsupported method: PROPFIND",
    }
    assert rest == b""
    with _connect(local_server) as connection, connection.makefile("rb") as stream:
        connection.sendall(b"GET /certificates HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        listed_status, _, listed = _read_response(stream)
    assert listed_status == 200
    assert json.loads(listed)["items"] == []


def test_each_request_is_logged_once_as_json_and_dated(local_server: LocalServer) -> None:
    with _connect(local_server) as connection, connection.makefile("rb") as stream:
        for _ in range(2):
            connection.sendall(b"GET /certificates HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, _ = _read_response(stream)
            assert status == 200
            sent = email.utils.parsedate_to_datetime(headers["date"])
            assert abs((sent - datetime.now(UTC)).total_seconds()) < 5
        connection.sendall(b"BREW /certificates HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(stream)[0] == 405

    deadline = time.monotonic() + TIMEOUT
    while '"status": 405' not in (log := local_server.log()) and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = log.splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(line["method"], line["status"]) for line in logged if "status" in line] == [
        ("GET", 200),
        ("GET", 200),
        ("BREW", 405),
    ]
    assert not [line for line in lines if 'HTTP/1.1" 200' in line], "a second access line"

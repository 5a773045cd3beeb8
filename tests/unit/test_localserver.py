"""The local server's request parsing and its wait for the next request, without a server.

The fast request parser must give exactly what the standard library's `parse_request` gives,
for every request, so each case runs through both and the results are compared field by field.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from chalicelib import localserver


class _Handler(BaseHTTPRequestHandler):
    """A request handler on in-memory streams: no socket, no server."""

    protocol_version = "HTTP/1.1"  # as chalice local's handler

    def __init__(self, request: bytes) -> None:  # the base class would serve a socket
        self.rfile = io.BytesIO(request)
        self.wfile = io.BytesIO()
        self.client_address = ("127.0.0.1", 0)
        self.request_version = self.default_request_version
        self.command = None
        self.errors: list[str] = []
        self.raw_requestline = self.rfile.readline(65537)

    def log_message(self, format: str, *args: object) -> None:
        self.errors.append(format % args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        return "Mon, 23 Nov 2026 00:00:00 GMT"  # both parsers' error pages alike


def _comparable(payload: object) -> object:
    """A payload that compares by content: parts (a `message/*` body) as their text."""
    return [str(part) for part in payload] if isinstance(payload, list) else payload


def _parsed(parse: object, request: bytes) -> dict[str, object]:
    handler = _Handler(request)
    accepted = parse(handler)  # type: ignore[operator]
    headers = getattr(handler, "headers", None)
    return {
        "accepted": accepted,
        "command": handler.command,
        "path": getattr(handler, "path", None),
        "request_version": handler.request_version,
        "requestline": getattr(handler, "requestline", None),
        "close_connection": handler.close_connection,
        "headers": None if headers is None else list(headers.items()),
        "header_defects": None if headers is None else [type(d) for d in headers.defects],
        "payload": None if headers is None else _comparable(headers.get_payload()),
        "as_string": None if headers is None else headers.as_string(),
        "multipart": None if headers is None else headers.is_multipart(),
        "epilogue": None if headers is None else headers.epilogue,
        "response": handler.wfile.getvalue(),
        "errors": handler.errors,
        "left_unread": handler.rfile.read(),
    }


BODY = b'{"fqdn": "a.example.com"}'
REQUESTS = {
    "plain POST": b"POST /certificates/root HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 25\r\n\r\n" + BODY,
    "GET with a query": b"GET /certificates?limit=10&parent=a.example.com HTTP/1.1\r\n"
    b"Host: x\r\nAccept: */*\r\n\r\n",
    "no headers": b"GET /certificates HTTP/1.1\r\n\r\n",
    "bare LF line ends": b"GET /certificates HTTP/1.1\nHost: x\nAccept: */*\n\n",
    "HTTP/1.0": b"GET /certificates HTTP/1.0\r\nHost: x\r\n\r\n",
    "HTTP/1.0 keep-alive": b"GET /certificates HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    "Connection: close": b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    "Connection: CLOSE": b"GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n",
    "Expect 100-continue": b"POST /certificates/root HTTP/1.1\r\nExpect: 100-continue\r\n"
    b"Content-Length: 25\r\n\r\n" + BODY,
    "Expect on HTTP/1.0": b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
    "repeated header": b"GET / HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\nx-a: 3\r\n\r\n",
    "spaces and tabs around values": b"GET / HTTP/1.1\r\nX-A:   spaced  \r\nX-B:\ttab\t\r\n"
    b"X-C:\r\nX-D: \r\n\r\n",
    "Latin-1 value": b"GET / HTTP/1.1\r\nX-Name: caf\xe9 \xff\r\n\r\n",
    "folded header": b"GET / HTTP/1.1\r\nX-A: one\r\n  two\r\nHost: x\r\n\r\n",
    "line without a colon": b"GET / HTTP/1.1\r\nHost: x\r\nnot a header\r\nX-B: 2\r\n\r\n",
    "space before the colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "empty header name": b"GET / HTTP/1.1\r\n: x\r\n\r\n",
    "CR inside a value": b"GET / HTTP/1.1\r\nX-A: a\rb\r\nX-B: 2\r\n\r\n",
    "line starting with From": b"GET / HTTP/1.1\r\nFrom someone\r\nHost: x\r\n\r\n",
    "first header line folded": b"GET / HTTP/1.1\r\n x: 1\r\nHost: x\r\n\r\n",
    "headers cut by EOF": b"GET / HTTP/1.1\r\nHost: x\r\n",
    "99 headers": b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 99 + b"\r\n",
    "100 headers": b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 100 + b"\r\n",
    "header line too long": b"GET / HTTP/1.1\r\nX-A: " + b"a" * 65536 + b"\r\n\r\n",
    "longest header line": b"GET / HTTP/1.1\r\nX-A: " + b"a" * 65528 + b"\r\n\r\n",
    "double slash path": b"GET //evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute URI": b"GET http://x/certificates HTTP/1.1\r\nHost: x\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    "lowercase method": b"get / HTTP/1.1\r\nHost: x\r\n\r\n",
    "HTTP/2.0": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "HTTP/1.10": b"GET / HTTP/1.10\r\nHost: x\r\n\r\n",
    "HTTP/0.9": b"GET /\r\n\r\n",
    "two spaces": b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    "tab separator": b"GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n",
    "trailing space": b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n",
    "Latin-1 path": b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\n\r\n",
    "no-break space in the path": b"GET /a\xa0b HTTP/1.1\r\nHost: x\r\n\r\n",
    "NEL ending the path": b"GET /a\x85 HTTP/1.1\r\nHost: x\r\n\r\n",
    "separator control in the path": b"GET /a\x1fb HTTP/1.1\r\nHost: x\r\n\r\n",
    "multipart body": b"POST /x HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=abc\r\n"
    b"Content-Length: 0\r\n\r\n",
    "multipart without a boundary": b"POST /x HTTP/1.1\r\nContent-Type: MULTIPART/mixed\r\n\r\n",
    "message body": b"POST /x HTTP/1.1\r\nContent-Type: message/rfc822\r\n\r\n",
    "Content-Length and Transfer-Encoding": b"POST /x HTTP/1.1\r\nContent-Length: 4\r\n"
    b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "bad version": b"GET / HTTPS/1.1\r\nHost: x\r\n\r\n",
    "empty request line": b"\r\n",
}


@pytest.mark.parametrize("request_bytes", REQUESTS.values(), ids=REQUESTS.keys())
def test_the_fast_parser_gives_what_the_standard_library_gives(request_bytes: bytes) -> None:
    expected = _parsed(BaseHTTPRequestHandler.parse_request, request_bytes)
    assert _parsed(localserver._parse_request, request_bytes) == expected


def test_the_plain_request_takes_the_fast_path_without_the_email_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_email_parser(*args: object, **kwargs: object) -> None:
        raise AssertionError("the email parser ran for a plain request")

    monkeypatch.setattr(localserver.email.parser, "Parser", no_email_parser)
    monkeypatch.setattr(localserver.http.client, "parse_headers", no_email_parser)
    parsed = _parsed(localserver._parse_request, REQUESTS["plain POST"])

    assert parsed["accepted"] is True
    assert parsed["headers"] == [
        ("Host", "127.0.0.1"),
        ("Content-Type", "application/json"),
        ("Content-Length", "25"),
    ]
    assert parsed["left_unread"] == BODY


def test_a_folded_header_goes_through_the_email_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    parser = localserver.email.parser.Parser

    def counting_parser(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return parser(*args, **kwargs)

    monkeypatch.setattr(localserver.email.parser, "Parser", counting_parser)
    parsed = _parsed(localserver._parse_request, REQUESTS["folded header"])

    assert len(calls) == 1
    assert dict(parsed["headers"])["X-A"] == "one\r\n  two"  # type: ignore[arg-type]


class _Connection:
    """The two attributes of a request handler the wait uses."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.rfile = connection.makefile("rb")


class _Clock:
    """`time.perf_counter` for the wait: each reading is 0.1 ms after the one before, and
    `on_reading` runs at a given reading (to send the request while the wait polls)."""

    STEP = 0.0001

    def __init__(self) -> None:
        self.readings = 0
        self.on_reading: dict[int, Callable[[], object]] = {}

    def __call__(self) -> float:
        self.readings += 1
        if self.readings in self.on_reading:
            self.on_reading[self.readings]()
        return self.readings * self.STEP


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(localserver.time, "perf_counter", clock)
    return clock


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the server's side, the client's side) of one connection."""
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        yield server_side, client_side


def test_with_nothing_sent_the_wait_polls_until_its_bound_then_the_read_blocks_as_before(
    clock: _Clock, sockets: tuple[socket.socket, socket.socket]
) -> None:
    server_side, client_side = sockets
    handler = _Connection(server_side)
    localserver._await_next_request(handler)

    polls = localserver.NEXT_REQUEST_POLL_SECONDS / _Clock.STEP
    assert clock.readings == pytest.approx(polls + 1, abs=1)  # polled up to the bound
    assert server_side.gettimeout() is None  # blocking, as the handler reads it
    client_side.sendall(b"late\r\n")
    assert handler.rfile.readline() == b"late\r\n"


def test_a_request_arriving_during_the_wait_ends_it_at_once_and_is_read_whole(
    clock: _Clock, sockets: tuple[socket.socket, socket.socket]
) -> None:
    server_side, client_side = sockets
    clock.on_reading[2] = lambda: client_side.sendall(b"GET / HTTP/1.1\r\n\r\n")
    handler = _Connection(server_side)
    localserver._await_next_request(handler)

    assert clock.readings == 2  # the deadline, then one poll that found the request
    assert server_side.gettimeout() is None
    assert handler.rfile.readline() == b"GET / HTTP/1.1\r\n"


def test_a_request_already_buffered_ends_the_wait_before_any_poll(
    clock: _Clock, sockets: tuple[socket.socket, socket.socket]
) -> None:
    server_side, client_side = sockets
    client_side.sendall(b"first\r\nsecond\r\n")  # pipelined: both land in one read
    handler = _Connection(server_side)
    assert handler.rfile.readline() == b"first\r\n"
    localserver._await_next_request(handler)

    assert clock.readings == 1
    assert handler.rfile.readline() == b"second\r\n"


def test_a_socket_with_a_timeout_is_left_as_it_is(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    server_side, _ = sockets
    server_side.settimeout(7)
    localserver._await_next_request(_Connection(server_side))

    assert server_side.gettimeout() == 7


def test_the_wait_ends_on_a_closed_connection(
    clock: _Clock, sockets: tuple[socket.socket, socket.socket]
) -> None:
    server_side, client_side = sockets
    client_side.close()
    handler = _Connection(server_side)
    localserver._await_next_request(handler)

    assert clock.readings <= 2  # no polling to the bound on a closed connection
    assert handler.rfile.readline() == b""

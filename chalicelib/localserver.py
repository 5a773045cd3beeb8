"""Adjustments to the `chalice local` development server; `app` applies them only under it."""

from __future__ import annotations

import email.parser
import email.utils
import functools
import http.client
import json
import re
import socket
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from chalicelib.api.middleware import request_log

RESPONSE_BUFFER_BYTES = 64 * 1024  # larger bodies go out as they are written
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"  # what chalice local serves
NEXT_REQUEST_POLL_SECONDS = 0.0005  # a keep-alive connection polls this long before it blocks
MAX_HEADER_LINE = 65536  # the standard library's limits (http.client)
MAX_HEADERS = 100
_PLAIN_REQUEST_LINE = re.compile(rb"([A-Z]+) (/[!-~]*) HTTP/1\.([01])\r?\n")  # printable path
_PLAIN_HEADER_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)\r?\n")


def _method_not_allowed(handler: Any) -> None:
    """Methods chalice local has no handler for: a JSON 405, not the stock 501 HTML page.

    The request body is not read, so the connection is closed after the answer: what follows
    on it must never be taken for the next request.
    """
    body = json.dumps(
        {"Code": "MethodNotAllowedError", "Message": f"Unsupported method: {handler.command}"}
    ).encode()
    handler.send_response(405)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Allow", ALLOWED_METHODS)
    handler.send_header("Connection", "close")  # also sets handler.close_connection
    handler.end_headers()
    handler.wfile.write(body)
    request_log.info(json.dumps({"method": handler.command, "path": handler.path, "status": 405}))


def _other_methods(handler: Any, name: str) -> Any:
    """BaseHTTPRequestHandler looks up `do_<METHOD>`; any method without one is refused here."""
    if name.startswith("do_"):
        return lambda: _method_not_allowed(handler)
    raise AttributeError(name)


@functools.lru_cache(maxsize=2)
def _http_date(second: int) -> str:
    return email.utils.formatdate(second, usegmt=True)


def _date_header(handler: Any, timestamp: float | None = None) -> str:
    """The `Date` header, formatted once per second rather than once per response."""
    return _http_date(int(time.time() if timestamp is None else timestamp))


def _no_access_line(handler: Any, code: Any = "-", size: Any = "-") -> None:
    """Every request that reaches the app already gets one JSON line (the request log); the
    standard library's access line would repeat it. Errors the server answers itself (a bad
    request line, say) are still logged, through `log_error`."""


def _continue_at_once(handler: Any) -> bool:
    """`Expect: 100-continue`: the interim response must leave now, not with the final one."""
    answered = BaseHTTPRequestHandler.handle_expect_100(handler)
    handler.wfile.flush()
    return answered


def _await_next_request(handler: Any) -> None:
    """Poll a connection for its next request a short while before blocking on it.

    A client that sends requests back to back (a provisioning script, a test rig) has the next
    one on the wire a few hundred microseconds after it reads a response. Blocking at once lets
    the CPU go idle, and waking it again, on a virtual machine above all, costs more than the
    poll. The poll is bounded, stops as soon as a byte is buffered or has arrived or the client
    has closed the connection, and skips sockets with a timeout (they manage their own waits).
    """
    connection = handler.connection
    if connection.gettimeout() is not None:
        return
    deadline = time.perf_counter() + NEXT_REQUEST_POLL_SECONDS
    connection.setblocking(False)
    try:
        if handler.rfile.peek(1):  # already buffered (pipelined), or read into the buffer now
            return
        while time.perf_counter() < deadline:
            try:
                connection.recv(1, socket.MSG_PEEK)  # a byte, or b"" at the end of the stream
                return
            except BlockingIOError:
                continue
    except OSError:
        pass  # a reset connection: the read that follows finds it closed and ends it
    finally:
        connection.setblocking(True)


def _handle_one_request(handler: Any) -> None:
    _await_next_request(handler)
    BaseHTTPRequestHandler.handle_one_request(handler)


def _read_header_lines(handler: Any) -> list[bytes] | None:
    """The raw header lines up to and with the blank one, within the limits of the standard
    library's reader (`http.client`); None after the same 431 answer."""
    lines = []
    while True:
        line = handler.rfile.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            handler.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Line too long",
                str(http.client.LineTooLong("header line")),
            )
            return None
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            handler.send_error(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Too many headers",
                f"got more than {MAX_HEADERS} headers",
            )
            return None
        if line in (b"\r\n", b"\n", b""):
            return lines


def _headers(handler: Any, lines: list[bytes]) -> http.client.HTTPMessage:
    """The same `HTTPMessage` the standard library builds, without its email parser for the
    plain `Name: value` lines of every common client. Any other line (folded, no colon, ...),
    or a `multipart/*` or `message/*` content type (the email parser looks for parts in the
    empty body), sends all of them through the email parser, as the standard library does."""
    message = handler.MessageClass()
    for line in lines[:-1]:
        plain = _PLAIN_HEADER_LINE.fullmatch(line)
        if plain is None:
            return _email_parsed(handler, lines)
        message[plain[1].decode("ascii")] = plain[2].decode("iso-8859-1")
    if message.get_content_maintype() in ("multipart", "message"):
        return _email_parsed(handler, lines)
    message.set_payload("")  # the email parser's body: nothing follows the blank line
    return message


def _email_parsed(handler: Any, lines: list[bytes]) -> http.client.HTTPMessage:
    text = b"".join(lines).decode("iso-8859-1")
    return email.parser.Parser(_class=handler.MessageClass).parsestr(text)


def _parse_request(handler: Any) -> bool:
    """`BaseHTTPRequestHandler.parse_request` with a fast path for the common request: an
    `HTTP/1.0` or `HTTP/1.1` request line with an absolute path of printable ASCII, and plain
    header lines.

    Any other request line goes to the standard library's parser unchanged. The result is the
    same in both: `command`, `path`, `request_version`, `headers`, `close_connection`, and the
    same handling of `Connection` and `Expect: 100-continue`.
    """
    plain = _PLAIN_REQUEST_LINE.fullmatch(handler.raw_requestline)
    if plain is None or plain[2].startswith(b"//"):
        return BaseHTTPRequestHandler.parse_request(handler)
    handler.command = plain[1].decode("ascii")
    handler.path = plain[2].decode("iso-8859-1")
    handler.request_version = "HTTP/1." + chr(plain[3][0])
    handler.requestline = f"{handler.command} {handler.path} {handler.request_version}"
    handler.close_connection = (
        handler.request_version == "HTTP/1.0" or handler.protocol_version < "HTTP/1.1"
    )
    lines = _read_header_lines(handler)
    if lines is None:
        return False
    handler.headers = _headers(handler, lines)
    connection = handler.headers.get("Connection", "").lower()
    if connection == "close":
        handler.close_connection = True
    elif connection == "keep-alive" and handler.protocol_version >= "HTTP/1.1":
        handler.close_connection = False
    if (
        handler.headers.get("Expect", "").lower() == "100-continue"
        and handler.request_version == "HTTP/1.1"
        and handler.protocol_version >= "HTTP/1.1"
    ):
        return bool(handler.handle_expect_100())
    return True


def tune_local_server() -> None:
    """Send each response in one write without Nagle's delay; answer every method in JSON.

    The stock handler writes the headers and the body in two small writes; with Nagle's algorithm
    the second waits for the client's delayed ACK, about 40 ms per request on a keep-alive
    connection. TCP_NODELAY on each connection removes that wait, and a buffered writer (the
    handler flushes it after each request) sends headers and body together in one segment.
    The request log's JSON line stands in for the stock access line, and the `Date` header is
    formatted once per second. Plain requests skip the standard library's email-based header
    parser, and a keep-alive connection polls briefly for its next request before it blocks.
    """
    from chalice.local import ChaliceRequestHandler  # loaded: this runs under chalice local

    handler = ChaliceRequestHandler
    handler.disable_nagle_algorithm = True
    handler.wbufsize = RESPONSE_BUFFER_BYTES
    handler.handle_expect_100 = _continue_at_once
    handler.date_time_string = _date_header
    handler.log_request = _no_access_line
    handler.__getattr__ = _other_methods
    handler.handle_one_request = _handle_one_request
    handler.parse_request = _parse_request

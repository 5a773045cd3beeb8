"""Adjustments to the `chalice local` development server, applied only when it is loaded."""

from __future__ import annotations

import email.utils
import functools
import json
import sys
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from chalicelib.api.middleware import request_log

RESPONSE_BUFFER_BYTES = 64 * 1024  # larger bodies go out as they are written
ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"  # what chalice local serves


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


def tune_local_server() -> None:
    """Send each response in one write without Nagle's delay; answer every method in JSON.

    The stock handler writes the headers and the body in two small writes; with Nagle's algorithm
    the second waits for the client's delayed ACK, about 40 ms per request on a keep-alive
    connection. TCP_NODELAY on each connection removes that wait, and a buffered writer (the
    handler flushes it after each request) sends headers and body together in one segment.
    The request log's JSON line stands in for the stock access line, and the `Date` header is
    formatted once per second.
    """
    local = sys.modules.get("chalice.local")
    if local is not None:
        handler = local.ChaliceRequestHandler
        handler.disable_nagle_algorithm = True
        handler.wbufsize = RESPONSE_BUFFER_BYTES
        handler.handle_expect_100 = _continue_at_once
        handler.date_time_string = _date_header
        handler.log_request = _no_access_line
        handler.__getattr__ = _other_methods

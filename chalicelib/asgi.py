"""The Chalice app as an ASGI application, for `make run`'s HTTP server (chalicelib/server.py).

Every request goes through Chalice's own API Gateway emulation (`chalice.local.LocalGateway`),
so routes, middleware, error mapping and binary handling are the code that Lambda and the test
client run. This module only maps an HTTP request onto that gateway and its answer back:
- the body's announced size is checked before any of it is read (413), at most the largest body
  any route accepts is buffered, and a request whose client went away before its body was
  complete is never run;
- path segments are percent-decoded as API Gateway decodes path parameters;
- a path no route matches is a JSON 404 (API Gateway's own answer would be a 403);
- the gateway runs in the worker's event loop, one request at a time per worker process, as in
  a Lambda instance (Chalice's `current_request` is one per app).
HTTP parsing, keep-alive and chunked bodies are the server's.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from chalicelib.api.parsing import MAX_BULK_BODY_BYTES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_BODY_BYTES = MAX_BULK_BODY_BYTES
"""The largest body any route takes; each route applies its own limit to what it gets."""
_KEEP_ENCODED = frozenset("/?#%;")
"""A path parameter decoding to one of these, or to a control character, keeps its encoding: it
would change the route (the gateway splits the path as a URL: `;` starts its parameters, and
tabs and line breaks are dropped)."""

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
"""Status code, header lines and body."""


def json_error(status: int, code: str, message: str) -> Answer:
    body = json.dumps({"Code": code, "Message": message}).encode()
    return status, [(b"content-type", b"application/json")], body


def decode_path(raw_path: str) -> str:
    """Percent-decode each path segment, as API Gateway decodes path parameters; a segment whose
    decoded form would change the route (see _KEEP_ENCODED) stays encoded and is refused by the
    parameter's validation instead."""
    segments = []
    for segment in raw_path.split("/"):
        decoded = unquote(segment) if "%" in segment else segment
        unsafe = _KEEP_ENCODED.intersection(decoded) or not decoded.isprintable()
        segments.append(segment if unsafe else decoded)
    return "/".join(segments)


class ClientGone(Exception):
    """The client disconnected before its request body was complete: nobody to answer."""


class BodyRefused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[2].decode())
        self.answer = answer


async def read_body(headers: dict[str, str], receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None when there is none. The announced size is checked before reading
    (a large upload is refused, never buffered); a chunked body is read up to the limit."""
    announced = headers.get("content-length")
    if announced is not None and int(announced) > limit:  # the server checked it is a number
        raise BodyRefused(
            json_error(
                413, "EntityTooLargeError", f"body: {announced} bytes is over the limit of {limit}"
            )
        )
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyRefused(
                json_error(413, "EntityTooLargeError", f"body: over the limit of {limit} bytes")
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks) or None


class ChaliceAsgiApp:
    """An ASGI callable that hands each HTTP request to Chalice's LocalGateway."""

    def __init__(self, gateway: Any, gateway_error: type[Exception]) -> None:
        self._gateway = gateway
        self._gateway_error = gateway_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no websockets; lifespan events are off in the server's settings
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        try:
            body = await read_body(headers, receive, MAX_BODY_BYTES)
        except ClientGone:
            return
        except BodyRefused as refused:
            await _send(send, refused.answer)
            return
        await _send(send, self.answer(scope, headers, body))

    def answer(self, scope: Scope, headers: dict[str, str], body: bytes | None) -> Answer:
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        path = decode_path(raw_path.split("?", 1)[0])
        query = scope.get("query_string", b"").decode("latin-1")
        method = scope["method"]
        try:
            response = self._gateway.handle_request(
                method=method, path=f"{path}?{query}" if query else path, headers=headers, body=body
            )
        except self._gateway_error as err:
            return self._gateway_refusal(err, method, path)
        lines = [
            (name.encode("latin-1"), str(value).encode("latin-1"))
            for name, values in {
                **(response.get("headers") or {}),
                **(response.get("multiValueHeaders") or {}),
            }.items()
            for value in (values if isinstance(values, list) else [values])
        ]
        if not any(name.lower() == b"content-type" for name, _ in lines):
            lines.append((b"content-type", b"application/json"))
        payload = response.get("body")
        if response.get("isBase64Encoded"):
            payload = base64.b64decode(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        return response["statusCode"], lines, payload or b""

    @staticmethod
    def _gateway_refusal(err: Any, method: str, path: str) -> Answer:
        """LocalGateway refuses a path no route matches as API Gateway does (403, "Missing
        Authentication Token"); a local server answers what the client needs to hear."""
        if getattr(err, "CODE", None) == 403:
            return json_error(404, "NotFoundError", f"no route matches {method} {path}")
        lines = [(str(k).encode(), str(v).encode()) for k, v in (err.headers or {}).items()]
        return err.CODE, lines, err.body or b""


async def _send(send: Send, answer: Answer) -> None:
    status, lines, body = answer
    lines = [*lines, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": lines})
    await send({"type": "http.response.body", "body": body})


def create_app(stage: str = "local") -> ChaliceAsgiApp:
    """The ASGI app of the Chalice app for `stage`, loaded as `chalice local` loads it: the
    stage's environment variables from .chalice/config.json are set first, then app.py is
    imported. (Chalice's own CLI factory would do the same, and load botocore, 20 MB a worker.)
    """
    from chalice.config import Config
    from chalice.local import LocalGateway, LocalGatewayException

    from_disk = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())
    if stage not in from_disk.get("stages", {}):
        raise SystemExit(f"stage {stage!r} is not in .chalice/config.json")
    provided: dict[str, Any] = {}  # the app joins it once imported, as Chalice's CLI does it
    config = Config(chalice_stage=stage, config_from_disk=from_disk, user_provided_params=provided)
    os.environ.update(config.environment_variables)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    provided["chalice_app"] = app = importlib.import_module("app").app
    return ChaliceAsgiApp(LocalGateway(app, config), LocalGatewayException)

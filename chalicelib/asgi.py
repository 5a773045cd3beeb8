"""The Chalice app as an ASGI application, for `make run`'s HTTP server (chalicelib/server.py).

Every request goes through Chalice's own API Gateway emulation (`chalice.local.LocalGateway`),
so routes, middleware, error mapping and binary handling are the code that Lambda and the test
client run. This module only maps an HTTP request onto that gateway and its answer back:
- the `Host` must be a name the server answers to (400 without one, 421 for another: see
  `config.allowed_hosts`), and an unsafe method without the token (when `API_TOKEN` is set) is
  refused before a byte of its body is read;
- the body's announced size is checked before any of it is read (413), at most the largest body
  any route accepts is buffered, and a request whose body ended before its announced end is
  never run;
- path segments are percent-decoded as API Gateway decodes path parameters;
- a path no route matches is a JSON 404 (API Gateway's own answer would be a 403);
- the gateway runs in the worker's event loop, one request at a time per worker process, as in
  a Lambda instance (Chalice's `current_request` is one per app): a request that reaches a
  worker busy with a long one (a large bulk) waits for it (docs/operations.md).
HTTP parsing, keep-alive and chunked bodies are the server's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from chalicelib.api.middleware import SAFE_METHODS, authorized, unauthorized
from chalicelib.api.parsing import MAX_BODY_BYTES as SMALL_BODY_BYTES
from chalicelib.api.parsing import MAX_BULK_BODY_BYTES
from chalicelib.config import allowed_hosts, api_token

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_BODY_BYTES = MAX_BULK_BODY_BYTES
"""The largest body any route takes; each route applies its own limit to what it gets."""
BODY_SECONDS = 30
"""A body must arrive whole within this time once the app reads it (1 MiB at 35 KB/s): a client
that sends slower gets 408 and its connection is closed, so half-sent bodies cannot pile up."""
LARGE_BODY_BUDGET_BYTES = 16 * 1024 * 1024
"""What one worker holds of large bodies at once (16 bulks of 1 MiB): see BodyBudget."""
_KEEP_ENCODED = frozenset("/?#%;")
"""A path parameter decoding to one of these, or to a control character, keeps its encoding: it
would change the route (the gateway splits the path as a URL: `;` starts its parameters, and
tabs and line breaks are dropped)."""

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Answer = tuple[int, list[tuple[bytes, bytes]], bytes]
"""Status code, header lines and body."""


def json_error(status: int, code: str, message: str, close: bool = False) -> Answer:
    body = json.dumps({"Code": code, "Message": message}).encode()
    lines = [(b"content-type", b"application/json")]
    return status, [*lines, (b"connection", b"close")] if close else lines, body


def host_name(host: str) -> str:
    """The name of a Host header, without its port: `[::1]:8000` is `::1`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def misdirected(headers: dict[str, str], scope: Scope, hosts: frozenset[str]) -> Answer | None:
    """A request without a Host, or for a name this server does not answer to (`hosts`, or the
    address the connection arrived at)."""
    host = headers.get("host")
    if not host:
        return json_error(400, "BadRequestError", "Host: the header is required")
    arrived_at = (scope.get("server") or ("",))[0] or ""
    name = host_name(host)
    if name in hosts or name == arrived_at.lower():
        return None
    return json_error(
        421,
        "MisdirectedRequestError",
        f"Host: {host} is not a name this server answers to (localhost, 127.0.0.1, [::1], the "
        "address it listens on, or one ALLOWED_HOSTS adds)",
    )


def refused_before_the_body(
    method: str, headers: dict[str, str], scope: Scope, hosts: frozenset[str]
) -> Answer | None:
    """What is answered without reading the body: a misdirected request, and an unsafe method
    without the token (every public route is a GET), so no one without the token makes the
    server buffer anything."""
    answer = misdirected(headers, scope, hosts)
    token = api_token()
    if answer is not None or not token or method.upper() in SAFE_METHODS:
        return answer
    if authorized(headers.get("authorization", ""), token):
        return None
    response = unauthorized()
    lines = [
        (k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in response.headers.items()
    ]
    if "content-length" in headers or "transfer-encoding" in headers:
        lines.append((b"connection", b"close"))  # the unread body ends the connection
    body = json.dumps(response.body).encode()
    return response.status_code, [(b"content-type", b"application/json"), *lines], body


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
    """The client disconnected, or stopped sending, before its request body was complete."""


CUT_SHORT = json_error(
    400, "BadRequestError", "body: the connection ended before the whole body arrived", close=True
)


class BodyRefused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[2].decode())
        self.answer = answer


class BodyBudget:
    """The bytes of large bodies (over SMALL_BODY_BYTES: only a bulk's are) one worker holds at
    once. A large body waits, unread, until the budget admits its size (its bytes stay in the
    kernel's socket buffers meanwhile); small bodies never wait. So hundreds of slow uploads
    cannot grow a worker's memory past the budget, and a fresh client is still answered."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._changed: asyncio.Condition | None = None

    @contextlib.asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        if size <= SMALL_BODY_BYTES:
            yield
            return
        if self._changed is None:
            self._changed = asyncio.Condition()
        changed = self._changed
        async with changed:
            await changed.wait_for(lambda: self._free >= size)
            self._free -= size
        try:
            yield
        finally:
            async with changed:
                self._free += size
                changed.notify_all()


async def read_body(
    headers: dict[str, str], receive: Receive, limit: int, budget: BodyBudget | None = None
) -> bytes | None:
    """The whole body, or None when there is none. The announced size is checked before reading
    (a large upload is refused, never buffered); a chunked body is read up to the limit. A
    body must arrive whole within BODY_SECONDS once reading starts (408 otherwise)."""
    announced = headers.get("content-length")
    if announced is not None and int(announced) > limit:  # the server checked it is a number
        raise BodyRefused(
            json_error(
                413, "EntityTooLargeError", f"body: {announced} bytes is over the limit of {limit}"
            )
        )
    if (announced is None and "transfer-encoding" not in headers) or announced == "0":
        return None  # no body
    expected = int(announced) if announced is not None else limit  # chunked: up to the limit
    async with (budget or BodyBudget(limit)).reserve(expected):
        try:
            async with asyncio.timeout(BODY_SECONDS):
                return await _read_chunks(receive, limit)
        except TimeoutError:
            raise BodyRefused(
                json_error(
                    408,
                    "RequestTimeoutError",
                    f"body: not received whole within {BODY_SECONDS} s",
                    close=True,
                )
            ) from None


async def _read_chunks(receive: Receive, limit: int) -> bytes | None:
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
        self._budget = BodyBudget(LARGE_BODY_BUDGET_BYTES)
        self._hosts = allowed_hosts()  # the environment is the worker's, set before it started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        early = refused_before_the_body(scope["method"], headers, scope, self._hosts)
        if early is not None:
            await _send(send, early)
            return
        try:
            body = await read_body(headers, receive, MAX_BODY_BYTES, self._budget)
        except ClientGone:
            # Answered in case the client only stopped sending (a half-close); nothing runs.
            with contextlib.suppress(Exception):  # the server's own error for a closed socket
                await _send(send, CUT_SHORT)
            return
        except BodyRefused as refused:
            await _send(send, refused.answer)
            return
        await _send(send, self.answer(scope, headers, body))

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        """At start, the worker's expiry scanner (chalicelib.wiring.start_expiry_scan); at
        shutdown it stops, and so does the worker's signing pool, so the worker can end."""
        from chalicelib.wiring import start_expiry_scan, stop_expiry_scan

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                start_expiry_scan()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                from chalicelib.wiring import close_signing_pools

                await asyncio.to_thread(stop_expiry_scan)
                await asyncio.to_thread(close_signing_pools)
                await send({"type": "lifespan.shutdown.complete"})
                return

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


def _stage_config(stage: str) -> tuple[Any, dict[str, Any]]:
    """Chalice's Config for `stage`, and the parameters it was given, which the app joins once
    imported (as Chalice's CLI does it)."""
    from chalice.config import Config

    from_disk = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())
    if stage not in from_disk.get("stages", {}):
        raise SystemExit(f"stage {stage!r} is not in .chalice/config.json")
    provided: dict[str, Any] = {}
    config = Config(chalice_stage=stage, config_from_disk=from_disk, user_provided_params=provided)
    return config, provided


def stage_environment(stage: str) -> dict[str, str]:
    """The environment variables .chalice/config.json sets for `stage` (they win over the
    process's own, as they do on Lambda)."""
    return dict(_stage_config(stage)[0].environment_variables)


def create_app(stage: str = "local") -> ChaliceAsgiApp:
    """The ASGI app of the Chalice app for `stage`, loaded as `chalice local` loads it: the
    stage's environment variables from .chalice/config.json are set first, then app.py is
    imported. (Chalice's own CLI factory would do the same, and load botocore, 20 MB a worker.)
    """
    from chalice.local import LocalGateway, LocalGatewayException

    config, provided = _stage_config(stage)
    os.environ.update(config.environment_variables)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    provided["chalice_app"] = app = importlib.import_module("app").app
    return ChaliceAsgiApp(LocalGateway(app, config), LocalGatewayException)


STAGE_VARIABLE = "IOT_CERT_SERVICE_STAGE"
"""How `make run`'s server tells its workers the Chalice stage to load."""


def server_app() -> ChaliceAsgiApp:
    """The app each worker of `make run`'s server loads (chalicelib/server.py)."""
    return create_app(os.environ.get(STAGE_VARIABLE, "local"))

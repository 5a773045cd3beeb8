"""`make run`'s HTTP server: granian, one worker process per usable CPU, serving the Chalice app.

    python -m chalicelib.server [--host 127.0.0.1] [--port 8000] [--stage local] [--workers N]

granian (its HTTP/1 is Rust's hyper) parses each request before the app sees it and bounds what
a client can hold before then: request headers (line included) over HEADER_BYTES get 431,
headers not received within HEADER_SECONDS (and a keep-alive connection idle that long) end the
connection, a malformed `Content-Length` or chunk gets 400, and a request with both
`Content-Length` and `Transfer-Encoding` is read as chunked and its connection closed after the
answer (RFC 9112, 6.1), so nothing can be smuggled behind it. The listen backlog is BACKLOG.
What the app adds before a body is read (Host, token, size, the large-body budget, the body's
time limit) is chalicelib/asgi.py's. Each worker serves one request at a time through Chalice's
own API Gateway emulation, in its event loop; workers share the store and SQLite
(docs/operations.md). A worker that dies is started again.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import socket
import sys
from pathlib import Path
from typing import Any

from chalicelib.adapters.local.serving import StoreInUse, hold_while_serving
from chalicelib.config import (
    DEFAULT_CERTSTORE_DIR,
    LOCAL_BACKEND,
    ConfigurationError,
    server_workers,
)

BACKLOG = 2048
"""Connections the kernel holds while every worker is busy (capped at net.core.somaxconn)."""
HEADER_BYTES = 16 * 1024
"""The request line and headers together: more is refused with 431."""
HEADER_SECONDS = 15
"""Headers must arrive within this time, and a keep-alive connection idle this long is closed."""


def serve(host: str, port: int, workers: int, stage: str) -> None:
    """granian's documented embedding: the server, its settings, and the app each worker loads
    (`chalicelib.asgi:server_app`) after the fork. granian is imported here, not with the module:
    the signing processes a worker starts need none of it."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server import Server

    from chalicelib.asgi import STAGE_VARIABLE

    os.environ[STAGE_VARIABLE] = stage
    server = Server(
        "chalicelib.asgi:server_app",
        address=host,
        port=port,
        interface=Interfaces.ASGI,  # with lifespan: see asgi.ChaliceAsgiApp
        workers=workers,
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        http1_settings=HTTP1Settings(
            header_read_timeout=HEADER_SECONDS * 1000, keep_alive=True, max_buffer_size=HEADER_BYTES
        ),
        log_level=LogLevels.warning,  # the app writes one JSON line per request
        log_access=False,
        factory=True,
        respawn_failed_workers=True,
        respawn_interval=0.5,
    )
    server.on_startup(announce_urls(host, port))
    server.serve()


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port already. Any other failure to bind is left to
    the server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError as err:
        return err.errno == errno.EADDRINUSE
    return False


def announce_urls(host: str, port: int) -> Any:
    """A startup hook: once the server listens, where the API and the portal are."""

    def announce() -> None:
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{port}"
        print(
            f"iot-cert-service is ready: the API at {base}, the portal at {base}/portal "
            "(Ctrl-C stops it)",
            file=sys.stderr,
            flush=True,
        )

    return announce


def hold_local_store(stage: str) -> contextlib.AbstractContextManager[Any]:
    """On the local backend, the lock that tells `make clean-store` the store is being served
    (held by the server's main process, inherited by every worker)."""
    from chalicelib.asgi import stage_environment

    environment = {**os.environ, **stage_environment(stage)}
    if environment.get("BACKEND", LOCAL_BACKEND).strip().lower() != LOCAL_BACKEND:
        return contextlib.nullcontext()
    return hold_while_serving(Path(environment.get("CERTSTORE_DIR", DEFAULT_CERTSTORE_DIR)))


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="local", help="Chalice stage (.chalice/config.json)")
    parser.add_argument(
        "--workers", type=int, help="worker processes (default: WORKERS, else one per usable CPU)"
    )
    parsed = parser.parse_args(arguments)
    if parsed.workers is None:
        try:
            parsed.workers = server_workers()
        except ConfigurationError as err:
            parser.error(str(err))
    if parsed.workers < 1:
        parser.error("--workers must be at least 1")
    if port_in_use(parsed.host, parsed.port):
        parser.error(f"port {parsed.port} on {parsed.host} is in use: choose another (make: PORT=)")
    os.environ["WORKERS"] = str(parsed.workers)  # the workers size their bulk signing by it
    try:
        serving = hold_local_store(parsed.stage)
    except (StoreInUse, ConfigurationError) as err:
        parser.error(str(err))
    with serving:
        serve(parsed.host, parsed.port, parsed.workers, parsed.stage)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

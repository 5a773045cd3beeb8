"""`make run`'s HTTP server: gunicorn, one worker process per usable CPU, serving the Chalice app.

    python -m chalicelib.server [--host 127.0.0.1] [--port 8000] [--stage local] [--workers N]

gunicorn's asyncio (ASGI) worker parses HTTP strictly (a request with both `Content-Length` and
`Transfer-Encoding`, a malformed `Content-Length` or chunk is refused with 400, an over-long
request line with 414, over-long or too many headers with 431, each then closing the
connection), keeps connections alive, accepts chunked bodies and holds a deep listen backlog.
Each worker loads the app (`chalicelib.asgi`, through Chalice's own local gateway) after the
fork, so the master stays small, and serves one request at a time in its event loop, with no
hand-off between threads. Workers share the store and SQLite (DESIGN section 2).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from typing import Any

from chalicelib.config import ConfigurationError, server_workers

KEEPALIVE_SECONDS = 15
BACKLOG = 2048
"""Connections the kernel holds while every worker is busy (gunicorn's default; the kernel caps
it at net.core.somaxconn)."""
REQUEST_TIMEOUT_SECONDS = 60
"""A worker whose event loop is held this long by one request is restarted, as Lambda ends an
invocation at its timeout; the accepted bulks are sized to finish well within API Gateway's
29 s (README, Limits), and every write is atomic, so a restart loses nothing acknowledged."""


def serve(settings: dict[str, Any], stage: str) -> None:
    """gunicorn's documented embedding (a BaseApplication): settings from here, the app loaded
    in each worker. gunicorn is imported here, not with the module: the signing processes a
    worker starts import this module again (it is the program's main module) and need none of
    it."""
    from gunicorn.app.base import BaseApplication

    class LocalServer(BaseApplication):
        def load_config(self) -> None:
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self) -> Any:
            from chalicelib.asgi import create_app

            return create_app(stage)

    LocalServer().run()


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port already (gunicorn would try again for five
    seconds, then exit with a traceback). Any other failure to bind is left to gunicorn."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.create_server((host, port), family=family).close()
    except OSError as err:
        return err.errno == errno.EADDRINUSE
    return False


def announce_urls(host: str, port: int) -> Any:
    """gunicorn's `when_ready` hook: once the server listens, where the API and the portal are."""

    def when_ready(_server: Any) -> None:
        shown = f"[{host}]" if ":" in host else host
        base = f"http://{shown}:{port}"
        print(
            f"iot-cert-service is ready: the API at {base}, the portal at {base}/portal "
            "(Ctrl-C stops it)",
            file=sys.stderr,
            flush=True,
        )

    return when_ready


def settings(host: str, port: int, workers: int) -> dict[str, Any]:
    return {
        "when_ready": announce_urls(host, port),
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "asgi",
        "asgi_lifespan": "off",
        "backlog": BACKLOG,
        "keepalive": KEEPALIVE_SECONDS,
        "timeout": REQUEST_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "accesslog": None,  # the app writes one JSON line per request
        "errorlog": "-",
        "proc_name": "iot-cert-service",
        "control_socket_disable": True,  # one fixed path per user: two servers would collide
    }


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
    serve(settings(parsed.host, parsed.port, parsed.workers), parsed.stage)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

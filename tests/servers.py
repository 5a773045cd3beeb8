"""Servers the tests start: the `make run` server in its own process group, and a small HTTP
server in a thread that records what a client sends."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.ports import free_port, wait_for_port
from devtools.procfs import child_pids
from tests.helpers import PROJECT_ROOT


class LocalServer:
    """The `make run` server (`python -m chalicelib.server`) on a free port and its own store,
    in a process group of its own (master, workers and their signing processes)."""

    def __init__(
        self,
        certstore: Path,
        log_path: Path,
        workers: int = 2,
        public_base_url: bool = False,
        **environment: str,
    ) -> None:
        """`public_base_url`: certificates name CRLs published at this server's own URL."""
        self.certstore = certstore
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self._environment = environment
        if public_base_url:
            self._environment["PUBLIC_BASE_URL"] = self.url
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        environment = dict(
            os.environ, CERTSTORE_DIR=str(self.certstore), BACKEND="local", **self._environment
        )
        command = [sys.executable, "-m", "chalicelib.server", "--port", str(self.port),
                   "--workers", str(self.workers)]  # fmt: skip
        with open(self._log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=environment, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        """SIGKILL to every process of the server at once, as a crash or `kill -9 -<pgid>`."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGINT, as Ctrl-C; SIGKILL to whatever is left after 15 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:  # workers and signing processes left behind, if any
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return child_pids(self.process.pid)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exception: object) -> None:
        self.stop()


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the recording server saw it (header names in lower case)."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class _Recorder(BaseHTTPRequestHandler):
    """Records each request; answers an empty listing or a small certificate."""

    server: RecordingServer

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append(Received(self.command, self.path, headers, body))
        listing = urllib.parse.urlsplit(self.path).path == "/certificates"
        reply = {"items": [], "next_token": None} if listing else {"fqdn": "dev.example.com"}
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class RecordingServer(ThreadingHTTPServer):
    """An HTTP server on a free port of 127.0.0.1 that keeps every request it receives."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: list[Received] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

"""What a client can hold of the `make run` server before it is authenticated: memory under
hundreds of slow clients, the time a connection may take to send its headers or its body or
sit idle, and the listen backlog the kernel keeps (chalicelib/server.py, chalicelib/asgi.py)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest
import requests

from chalicelib.asgi import BODY_SECONDS
from chalicelib.server import BACKLOG, HEADER_SECONDS
from devtools.procfs import descendants, resident_kb_of_tree
from tests.servers import LocalServer

SLOW_CLIENTS = 600
MEMORY_BOUND_MB = 400


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    directory = tmp_path_factory.mktemp("bounds")
    with LocalServer(directory / "certstore", directory / "server.log") as started:
        yield started


def _server_mb(server: LocalServer) -> float:
    assert server.process is not None
    return resident_kb_of_tree([server.process.pid, *descendants(server.process.pid)]) / 1024


def _closed_within(connection: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it is still open."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    return received


@pytest.mark.slow
def test_six_hundred_half_sent_bodies_hold_memory_bounded_and_a_fresh_client_is_answered(
    server: LocalServer,
) -> None:
    head = (
        f"POST /certificates/device HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
    ).encode()
    half = b"[" + b" " * (512 * 1024)
    with ExitStack() as stack:
        clients = [
            stack.enter_context(socket.create_connection(("127.0.0.1", server.port), timeout=30))
            for _ in range(SLOW_CLIENTS)
        ]

        def send_halves() -> None:
            for client in clients:
                client.sendall(head)
            for client in clients:
                client.settimeout(0.5)  # a worker that has its budget full reads no more
                with suppress(OSError):
                    client.sendall(half)

        feeding = threading.Thread(target=send_halves, daemon=True)
        feeding.start()
        feeding.join(timeout=120)
        held = _server_mb(server)
        fresh_get = requests.get(f"{server.url}/certificates", timeout=10)
        fresh_post = requests.post(
            f"{server.url}/certificates/root", json={"fqdn": "fresh.bounds.example"}, timeout=10
        )
        held = max(held, _server_mb(server))

    assert held < MEMORY_BOUND_MB, f"the server grew to {held:.0f} MB"
    assert fresh_get.status_code == 200, fresh_get.text
    assert fresh_post.status_code == 201, fresh_post.text


@pytest.mark.slow
def test_slow_headers_idle_connections_and_slow_bodies_are_closed(server: LocalServer) -> None:
    """Headers must arrive within HEADER_SECONDS, a keep-alive connection may idle as long, and
    a body must arrive whole within BODY_SECONDS (then 408, and nothing runs)."""
    partial_headers = socket.create_connection(("127.0.0.1", server.port))
    partial_headers.sendall(b"GET /certificates HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    idle = socket.create_connection(("127.0.0.1", server.port))
    idle.sendall(b"GET /certificates HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    slow_body = socket.create_connection(("127.0.0.1", server.port))
    body = json.dumps({"fqdn": "slow-body.bounds.example"}).encode()
    slow_body.sendall(
        b"POST /certificates/root HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5]
    )
    started = time.monotonic()
    with partial_headers, idle, slow_body:
        headers_sent = _closed_within(partial_headers, HEADER_SECONDS + 10)
        headers_closed = time.monotonic() - started
        idle_sent = _closed_within(idle, HEADER_SECONDS + 10)
        body_sent = _closed_within(slow_body, BODY_SECONDS + 15)

    assert headers_sent is not None, "a connection still sending its headers was kept open"
    assert headers_closed >= HEADER_SECONDS - 1  # not closed before its time
    assert idle_sent is not None and idle_sent.startswith(b"HTTP/1.1 200 "), idle_sent
    assert body_sent is not None and body_sent.startswith(b"HTTP/1.1 408 "), body_sent
    assert b"RequestTimeoutError" in body_sent
    answer = requests.get(f"{server.url}/certificates/slow-body.bounds.example", timeout=10)
    assert answer.status_code == 404  # the body that came too slowly never ran


def test_the_listen_backlog_is_the_configured_one(server: LocalServer) -> None:
    """`ss -ltn` shows a listening socket's backlog as its Send-Q; the kernel caps it at
    net.core.somaxconn."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed: cannot read the listen backlog")
    listed = subprocess.run(
        ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    backlogs = {int(line.split()[2]) for line in listed if line.strip()}
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())

    assert backlogs == {min(BACKLOG, somaxconn)}, listed

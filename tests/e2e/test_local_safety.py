"""`make run` on a developer's machine, tried as a web page in the same browser and as a client
without the token would: requests for a host name the server does not serve (DNS rebinding),
simple cross-site POSTs, and bodies sent before authentication."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests

from tests.servers import LocalServer

TOKEN = "token-5f0c"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    directory = tmp_path_factory.mktemp("safety")
    with LocalServer(
        directory / "certstore", directory / "server.log", workers=1, ALLOWED_HOSTS="ca.lab.test"
    ) as started:
        yield started


def exchange(port: int, raw: bytes, wait: float = 10) -> tuple[int, dict[str, str], bytes]:
    """`raw` sent on a new connection; the status, headers and body of the answer."""
    with closing(socket.create_connection(("127.0.0.1", port), timeout=wait)) as connection:
        connection.sendall(raw)
        with connection.makefile("rb") as stream:
            status = int(stream.readline().split()[1])
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            return status, headers, stream.read(int(headers.get("content-length", "0")))


def test_a_foreign_or_missing_host_is_refused_before_any_route_runs(server: LocalServer) -> None:
    root = requests.post(f"{server.url}/certificates/root", json={"fqdn": "hosts.example"})
    assert root.status_code == 201, root.text
    created = requests.post(
        f"{server.url}/certificates/server", json={"fqdn": "mqtt.hosts.example"}
    )
    assert created.status_code == 201, created.text
    key_path = "/certificates/mqtt.hosts.example/private-key"
    for host in ("rebind.attacker.example", "rebind.attacker.example:" + str(server.port),
                 "127.0.0.2", "localhost.attacker.example"):  # fmt: skip
        status, _, body = exchange(
            server.port, f"GET {key_path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        assert status == 421, (host, body)
        error = json.loads(body)
        assert error["Code"] == "MisdirectedRequestError" and host in error["Message"]
        assert b"PRIVATE KEY" not in body
    status, _, body = exchange(server.port, f"GET {key_path} HTTP/1.0\r\n\r\n".encode())
    assert status == 400 and json.loads(body)["Message"] == "Host: the header is required"

    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]", "ca.lab.test",
                 f"CA.Lab.Test:{server.port}"):  # fmt: skip
        status, _, body = exchange(
            server.port,
            f"GET {key_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(),
        )
        assert status == 200, (host, body)
        assert b"PRIVATE KEY" in body


def test_simple_cross_site_posts_run_nothing(server: LocalServer) -> None:
    """What a form or a `fetch(..., {mode: "no-cors"})` on another origin can send."""
    bodies = {
        "no content type": (None, b'{"fqdn": "csrf.example"}'),
        "text/plain": ("text/plain", b'{"fqdn": "csrf.example"}'),
        "a form": ("application/x-www-form-urlencoded", b"fqdn=csrf.example"),
    }
    for name, (content_type, body) in bodies.items():
        head = f"POST /certificates/root HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        head += "Origin: https://attacker.example\r\nConnection: close\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        status, _, answer = exchange(
            server.port, head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
        )
        assert status == 415, (name, answer)
    origin = {"Origin": "https://attacker.example"}
    refused = requests.post(
        f"{server.url}/certificates/root", json={"fqdn": "csrf.example"}, headers=origin
    )
    assert refused.status_code == 403, refused.text
    assert "access-control-allow-origin" not in {name.lower() for name in refused.headers}
    assert requests.get(f"{server.url}/certificates/csrf.example").status_code == 404


def test_without_the_token_a_post_is_refused_before_its_body_is_read(tmp_path: Path) -> None:
    with LocalServer(
        tmp_path / "certstore", tmp_path / "server.log", workers=1, API_TOKEN=TOKEN
    ) as server:
        started = time.monotonic()
        # A 1 MiB body announced and never sent: the answer cannot wait for it.
        status, headers, body = exchange(
            server.port,
            f"POST /certificates/device HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n".encode(),
            wait=5,
        )
        assert status == 401 and json.loads(body)["Code"] == "UnauthorizedError"
        assert headers.get("connection") == "close"
        assert time.monotonic() - started < 5
        authorized = requests.post(
            f"{server.url}/certificates/root", json={"fqdn": "token.example"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        assert authorized.status_code == 201, authorized.text
        # Public routes stay public: a relying party fetches a CRL without the token.
        crl = requests.get(f"{server.url}/certificates/token.example/crl")
        assert crl.status_code == 200 and crl.headers["content-type"] == "application/pkix-crl"

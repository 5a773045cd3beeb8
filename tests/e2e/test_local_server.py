"""The `make run` server over raw sockets: HTTP as a client, or an attacker, would send it.

Framing errors are the HTTP server's to refuse (granian answers them itself and closes the
connection); what reaches the app is answered in the API's JSON error shape. Each refusal is
also checked for its effect: a refused request never runs (no certificate appears).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import BinaryIO

import pytest
import requests

from devtools.procfs import resident_kb_of_tree
from tests.helpers import NON_ASCII_PASSWORD, PROJECT_ROOT, assert_pkcs12_opens
from tests.servers import LocalServer

TIMEOUT = 20  # seconds; only a hang reaches it
ROOT_BODY = json.dumps({"fqdn": "example.com"}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One server for the module: each test uses FQDNs of its own."""
    directory = tmp_path_factory.mktemp("http")
    with LocalServer(directory / "certstore", directory / "server.log") as started:
        yield started


def _connect(server: LocalServer) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return connection


def _read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection without a response")
    status = int(status_line.split()[1])
    headers = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return status, headers, body


def _exchange(server: LocalServer, raw: bytes) -> tuple[int, dict[str, str], bytes, bytes]:
    """Send `raw` on a new connection; the response and whatever follows until the server
    closes the connection (b"" when it closes right after answering)."""
    with _connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(raw)
        status, headers, body = _read_response(stream)
        connection.settimeout(2)
        try:
            rest = stream.read()
        except TimeoutError:
            rest = b"<still open>"
    return status, headers, body, rest


def _post(path: str, body: bytes, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _root_exists(server: LocalServer, fqdn: str) -> bool:
    return requests.get(f"{server.url}/certificates/{fqdn}", timeout=TIMEOUT).status_code == 200


def _chunked(body: bytes, pieces: int = 3) -> bytes:
    size = -(-len(body) // pieces)
    parts = [body[start : start + size] for start in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def test_a_chunked_body_is_accepted(server: LocalServer) -> None:
    body = json.dumps({"fqdn": "chunked.example.com"}).encode()
    raw = (
        b"POST /certificates/root HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(body)
    )
    with _connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(raw)
        status, headers, payload = _read_response(stream)

    assert status == 201, payload
    assert headers["content-type"] == "application/json"
    assert json.loads(payload)["fqdn"] == "chunked.example.com"


def test_content_length_and_transfer_encoding_together_smuggle_nothing(server: LocalServer) -> None:
    """RFC 9112, 6.1: the body is read by its Transfer-Encoding alone and the connection closed
    after the answer, so a request hidden behind the body (where a proxy trusting
    Content-Length would see it) is never read."""
    body = json.dumps({"fqdn": "smuggle-te.example.com"}).encode()
    hidden = _post("/certificates/root", json.dumps({"fqdn": "smuggled.example.com"}).encode())
    raw = (
        b"POST /certificates/root HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + _chunked(body) + hidden
    )

    status, headers, _, rest = _exchange(server, raw)

    assert status == 201
    assert headers["connection"] == "close"
    assert rest == b""
    assert not _root_exists(server, "smuggled.example.com")


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "12 34"])
def test_a_malformed_content_length_is_a_400_and_nothing_runs(
    server: LocalServer, length: str
) -> None:
    body = json.dumps({"fqdn": "bad-length.example.com"}).encode()
    raw = (
        f"POST /certificates/root HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode() + body

    status, headers, _, rest = _exchange(server, raw)

    assert status == 400
    assert headers["connection"] == "close"
    assert rest == b""
    assert not _root_exists(server, "bad-length.example.com")


def test_a_body_cut_short_is_never_run(server: LocalServer) -> None:
    body = json.dumps({"fqdn": "cut-short.example.com"}).encode()
    raw = _post("/certificates/root", body)[:-5]  # the client gives up before the end
    with _connect(server) as connection:
        connection.sendall(raw)
        connection.shutdown(socket.SHUT_WR)
        connection.settimeout(5)
        answer = connection.recv(65536)

    assert answer.startswith(b"HTTP/1.1 400 ")  # to a client that only stopped sending
    assert b"the connection ended before the whole body arrived" in answer
    time.sleep(0.5)
    assert not _root_exists(server, "cut-short.example.com")


def test_an_announced_oversized_body_is_refused_before_it_is_read(server: LocalServer) -> None:
    """300 MB announced: 413 at once, the connection closed, the server's memory flat."""
    before = resident_kb_of_tree(server.worker_pids())
    with _connect(server) as connection, connection.makefile("rb") as stream:
        head = (
            "POST /certificates/device HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 314572800\r\n\r\n"
        )
        connection.sendall(head.encode())
        sent = _send_until_refused(connection, b"a" * 65536, limit=300 * 1024 * 1024)
        status, headers, body = _read_response(stream)

    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["Code"] == "EntityTooLargeError"
    assert sent < 64 * 1024 * 1024, "the server read far more than its limit before refusing"
    grown = resident_kb_of_tree(server.worker_pids()) - before
    assert grown < 20 * 1024, f"the workers grew by {grown} kB"


def test_a_chunked_body_over_the_limit_is_refused(server: LocalServer) -> None:
    before = resident_kb_of_tree(server.worker_pids())
    with _connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(
            b"POST /certificates/device HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b"a" * 65536)
        sent = _send_until_refused(connection, chunk, limit=300 * 1024 * 1024)
        status, _, body = _read_response(stream)

    assert status == 413
    assert json.loads(body)["Code"] == "EntityTooLargeError"
    assert sent < 64 * 1024 * 1024
    assert resident_kb_of_tree(server.worker_pids()) - before < 20 * 1024


def _send_until_refused(connection: socket.socket, block: bytes, limit: int) -> int:
    """Send `block` repeatedly until the server answers or closes, or `limit` bytes went."""
    sent = 0
    connection.setblocking(False)
    try:
        while sent < limit:
            try:
                sent += connection.send(block)
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                if connection.recv(1, socket.MSG_PEEK):
                    break  # the answer has started
            except BlockingIOError:
                continue
    finally:
        connection.setblocking(True)
        connection.settimeout(TIMEOUT)
    return sent


def test_an_over_long_request_line_or_header_is_431(server: LocalServer) -> None:
    """The request line and headers share one bound (chalicelib/server.py, HEADER_BYTES)."""
    long_line = b"GET /certificates?parent=" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    huge_header = b"GET /certificates HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    many_headers = (
        b"GET /certificates HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-Header-%d: a\r\n" % index for index in range(200))
        + b"\r\n"
    )

    answers = [_exchange(server, raw) for raw in (long_line, huge_header, many_headers)]

    assert [status for status, _, _, _ in answers] == [431, 431, 431]
    assert all(headers["connection"] == "close" for _, headers, _, _ in answers)


def test_an_unknown_route_is_a_json_404(server: LocalServer) -> None:
    response = requests.get(f"{server.url}/no/such/route", timeout=TIMEOUT)

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "Code": "NotFoundError",
        "Message": "no route matches GET /no/such/route",
    }


def test_every_refusal_the_app_sees_is_a_code_ending_in_error_and_a_message(
    server: LocalServer,
) -> None:
    """The adapter's own (unknown route, oversized body) and Chalice's, as the server sends them."""
    url = server.url
    root = requests.post(
        f"{url}/certificates/root", json={"fqdn": "errors.example.com"}, timeout=TIMEOUT
    )
    assert root.status_code == 201, root.text
    leaf = requests.post(
        f"{url}/certificates/server", json={"fqdn": "mqtt.errors.example.com"}, timeout=TIMEOUT
    )
    assert leaf.status_code == 201, leaf.text
    status, _, body, _ = _exchange(
        server,
        b"POST /certificates/device HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n",
    )
    answers = {
        "route": requests.get(f"{url}/no/such/route", timeout=TIMEOUT),
        "method": requests.delete(f"{url}/certificates", timeout=TIMEOUT),
        "media-type": requests.post(
            f"{url}/certificates/root",
            data="{}",
            headers={"Content-Type": "text/plain"},
            timeout=TIMEOUT,
        ),
        "binary-not-accepted": requests.get(
            f"{url}/certificates/mqtt.errors.example.com/bundle?format=pkcs12",
            headers={"Accept": "application/json", "X-Bundle-Password": "secret"},
            timeout=TIMEOUT,
        ),
    }
    shapes = {name: (answer.status_code, answer.json()) for name, answer in answers.items()}
    shapes["too-large"] = (status, json.loads(body))

    for name, (_, error) in shapes.items():
        assert set(error) == {"Code", "Message"} and error["Code"].endswith("Error"), name
    assert {name: (code, error["Code"]) for name, (code, error) in shapes.items()} == {
        "route": (404, "NotFoundError"),
        "method": (405, "MethodNotAllowedError"),
        "media-type": (415, "UnsupportedMediaTypeError"),
        "binary-not-accepted": (400, "BadRequestError"),
        "too-large": (413, "EntityTooLargeError"),
    }


def test_path_parameters_are_percent_decoded_as_api_gateway_does(server: LocalServer) -> None:
    requests.post(f"{server.url}/certificates/root", json={"fqdn": "decoded.example.com"})

    plain = requests.get(f"{server.url}/certificates/decoded.example.com", timeout=TIMEOUT)
    encoded = requests.get(f"{server.url}/certificates/de%63oded%2Eexample.com", timeout=TIMEOUT)
    slash = requests.get(f"{server.url}/certificates/decoded%2Fexample.com", timeout=TIMEOUT)

    assert encoded.status_code == 200
    assert encoded.json() == plain.json()
    assert slash.status_code == 400  # an encoded "/" is the parameter's, and not an FQDN
    assert slash.json()["Code"] == "BadRequestError"


def test_hundreds_of_simultaneous_connections_are_all_answered(server: LocalServer) -> None:
    """Far more connections than workers arrive at once: the backlog holds them all."""
    count = 256
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    failures: list[BaseException] = []

    def client() -> None:
        try:
            barrier.wait(timeout=TIMEOUT)
            with closing(socket.create_connection(("127.0.0.1", server.port), timeout=30)) as c:
                c.sendall(
                    b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                with c.makefile("rb") as stream:
                    statuses.append(_read_response(stream)[0])
        except BaseException as err:  # a refused or timed-out connect fails the test
            failures.append(err)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert statuses == [200] * count


def test_keep_alive_and_new_connections_are_both_served(server: LocalServer) -> None:
    with requests.Session() as session:
        reused = [
            session.post(
                f"{server.url}/certificates/root", json={"fqdn": f"kept{index}.example.com"}
            ).status_code
            for index in range(5)
        ]
    fresh = [
        requests.post(
            f"{server.url}/certificates/root",
            json={"fqdn": f"fresh{index}.example.com"},
            headers={"Connection": "close"},
        ).status_code
        for index in range(5)
    ]

    assert reused == [201] * 5
    assert fresh == [201] * 5


def test_pipelined_requests_on_one_connection_are_answered_in_order(server: LocalServer) -> None:
    names = [f"pipe{index}.example.com" for index in range(3)]
    raw = b"".join(_post("/certificates/root", json.dumps({"fqdn": n}).encode()) for n in names)
    raw += b"GET /certificates?limit=1000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

    with _connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(raw)
        responses = [_read_response(stream) for _ in range(len(names) + 1)]

    assert [status for status, _, _ in responses] == [201, 201, 201, 200]
    assert [json.loads(body)["fqdn"] for _, _, body in responses[:3]] == names
    listed = {item["fqdn"] for item in json.loads(responses[3][2])["items"]}
    assert set(names) <= listed


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: LocalServer) -> None:
    body = json.dumps({"fqdn": "continue.example.com"}).encode()
    with _connect(server) as connection, connection.makefile("rb") as stream:
        request = _post("/certificates/root", body, "Expect: 100-continue\r\n")
        connection.sendall(request[: -len(body)])  # the headers only

        interim, _, _ = _read_response(stream)  # waits here if 100 never came
        connection.sendall(body)
        status, _, payload = _read_response(stream)

    assert interim == 100
    assert status == 201
    assert json.loads(payload)["fqdn"] == "continue.example.com"


def test_an_unknown_method_gets_a_json_405_and_its_body_is_never_run(server: LocalServer) -> None:
    smuggled = _post("/certificates/root", json.dumps({"fqdn": "smuggled.example.com"}).encode())
    raw = (
        f"PROPFIND /certificates HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n"
    ).encode() + smuggled

    with _connect(server) as connection, connection.makefile("rb") as stream:
        connection.sendall(raw)
        status, headers, body = _read_response(stream)

    assert status == 405
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "Code": "MethodNotAllowedError",
        "Message": "Unsupported method: PROPFIND",
    }
    assert not _root_exists(server, "smuggled.example.com")


def test_a_non_ascii_bundle_password_sent_as_utf_8_opens_the_pkcs12(server: LocalServer) -> None:
    with requests.Session() as session:
        for path, body in (
            ("root", {"fqdn": "utf8-password.example.com"}),
            ("device", {"parent_fqdn": "utf8-password.example.com"}),
        ):
            created = session.post(f"{server.url}/certificates/{path}", json=body, timeout=TIMEOUT)
            assert created.status_code == 201, created.text
        fqdn = created.json()["fqdn"]
        response = session.get(
            f"{server.url}/certificates/{fqdn}/bundle?format=pkcs12",
            headers={"X-Bundle-Password": NON_ASCII_PASSWORD.encode()},  # raw UTF-8 on the wire
            timeout=TIMEOUT,
        )

    assert response.status_code == 200, response.text
    assert_pkcs12_opens(response.content, NON_ASCII_PASSWORD, fqdn)


def test_each_request_is_logged_once_as_json(tmp_path: Path) -> None:
    with (
        LocalServer(tmp_path / "certstore", tmp_path / "server.log", workers=1) as server,
        requests.Session() as session,
    ):
        assert session.get(f"{server.url}/certificates").status_code == 200
        assert session.get(f"{server.url}/certificates").status_code == 200
        assert session.request("BREW", f"{server.url}/certificates").status_code == 405

    lines = server.log().splitlines()
    logged = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(line["method"], line["status"]) for line in logged if "status" in line] == [
        ("GET", 200),
        ("GET", 200),
        ("BREW", 405),
    ]
    assert all(line["request_id"] for line in logged if "job" not in line)  # the expiry scan's
    assert all(line["level"] == "INFO" and line["time"].endswith("Z") for line in logged)


def test_a_port_in_use_is_refused_at_once_with_a_message(server: LocalServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chalicelib.server", "--port", str(server.port), "--workers", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip

    assert result.returncode == 2, result.stderr
    assert f"port {server.port} on 127.0.0.1 is in use" in result.stderr


def test_the_server_says_where_the_api_and_the_portal_are_once_it_listens(
    server: LocalServer,
) -> None:
    said = f"iot-cert-service is ready: the API at {server.url}, the portal at {server.url}/portal"
    deadline = time.monotonic() + 10
    while said not in server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert said in server.log()

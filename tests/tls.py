"""Real TLS handshakes between issued certificates, with Python's `ssl` over a socket pair (the
server in a thread), and the openssl command line: strict contexts trusting one root, what each
side saw, and the files `load_cert_chain` reads."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

SERVER = "mqtt.servers.example.com"
"""The server certificate's name in the TLS tests."""
SOCKET_TIMEOUT = 10.0
"""Seconds any socket operation may block: a broken handshake fails instead of hanging."""

TLS_VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, id="TLSv1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="TLSv1.3"),
]
CLIENT_MESSAGE = b"CONNECT device"
SERVER_REPLY = b"CONNACK "


@dataclass(frozen=True)
class Credentials:
    """A certificate with its chain, and its private key, as files for `load_cert_chain`."""

    cert_chain_file: Path
    key_file: Path
    certificate: x509.Certificate


@dataclass
class Outcome:
    """What one side of the connection saw."""

    error: BaseException | None = None
    peer: dict[str, Any] | None = None
    peer_der: bytes | None = None
    version: str | None = None
    received: bytes = b""
    events: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.error is None and bool(self.received)


def write_credentials(issued: dict[str, Any], directory: Path, name: str) -> Credentials:
    cert_chain_file = directory / f"{name}.crt"
    cert_chain_file.write_text(issued["certificate"] + issued["chain"])
    key_file = directory / f"{name}.key"
    key_file.write_text(issued["private_key"])
    key_file.chmod(0o600)
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    return Credentials(cert_chain_file, key_file, certificate)


def _strict(context: ssl.SSLContext, version: ssl.TLSVersion, trusted_root_pem: str) -> None:
    context.minimum_version = version
    context.maximum_version = version
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cadata=trusted_root_pem)
    # Trust must be anchored at the root alone: no partial chains ending at an intermediate.
    assert not context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    assert context.verify_flags & ssl.VERIFY_X509_STRICT


def server_context(
    version: ssl.TLSVersion, credentials: Credentials, trusted_root_pem: str
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _strict(context, version, trusted_root_pem)
    context.load_cert_chain(credentials.cert_chain_file, credentials.key_file)
    return context


def client_context(
    version: ssl.TLSVersion, credentials: Credentials, trusted_root_pem: str
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = True
    _strict(context, version, trusted_root_pem)
    context.load_cert_chain(credentials.cert_chain_file, credentials.key_file)
    return context


def _serve(context: ssl.SSLContext, raw: socket.socket, outcome: Outcome) -> None:
    try:
        with context.wrap_socket(raw, server_side=True) as tls:
            outcome.events.append("handshake")
            outcome.peer = tls.getpeercert()
            outcome.peer_der = tls.getpeercert(binary_form=True)
            outcome.version = tls.version()
            outcome.received = tls.recv(1024)
            tls.sendall(SERVER_REPLY + outcome.received)
    except OSError as err:  # ssl.SSLError is an OSError; so are resets and timeouts.
        outcome.error = err
    finally:
        raw.close()


def _connect(
    context: ssl.SSLContext, raw: socket.socket, server_hostname: str, outcome: Outcome
) -> None:
    try:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            outcome.events.append("handshake")
            outcome.peer = tls.getpeercert()
            outcome.peer_der = tls.getpeercert(binary_form=True)
            outcome.version = tls.version()
            tls.sendall(CLIENT_MESSAGE)
            outcome.received = tls.recv(1024)
    except OSError as err:
        outcome.error = err
    finally:
        raw.close()


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, server_hostname: str
) -> tuple[Outcome, Outcome]:
    """Connect a client to a server over a socket pair; the server runs in a thread."""
    server_socket, client_socket = socket.socketpair()
    server_socket.settimeout(SOCKET_TIMEOUT)
    client_socket.settimeout(SOCKET_TIMEOUT)
    server_outcome, client_outcome = Outcome(), Outcome()
    thread = threading.Thread(
        target=_serve, args=(server, server_socket, server_outcome), daemon=True
    )
    thread.start()
    try:
        _connect(client, client_socket, server_hostname, client_outcome)
    finally:
        client_socket.close()
        thread.join(timeout=SOCKET_TIMEOUT * 3)
    if thread.is_alive():
        server_socket.close()
        pytest.fail("the TLS server thread did not finish although every socket has a timeout")
    return server_outcome, client_outcome


def common_name(peer: dict[str, Any] | None) -> str:
    assert peer is not None
    attributes = dict(pair for relative_name in peer["subject"] for pair in relative_name)
    return attributes["commonName"]


def assert_failed(server: Outcome, client: Outcome) -> None:
    """At least one side raised ssl.SSLError and no application data got through."""
    errors = [outcome.error for outcome in (server, client)]
    assert any(isinstance(error, ssl.SSLError) for error in errors), errors
    assert not server.completed
    assert not client.completed
    assert server.received == b""
    assert client.received == b""


OPENSSL_TIMEOUT_SECONDS = 30


def openssl_path() -> str:
    """The openssl command (skips the test where it is not installed)."""
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("the openssl command is not on PATH; the ssl-module handshakes cover this")
    return path


def run_openssl(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [openssl_path(), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=OPENSSL_TIMEOUT_SECONDS,
        check=False,
    )

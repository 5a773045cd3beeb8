"""A real mutual-TLS handshake with Python's `ssl` between issued server and device certificates.

The server (mqtt.servers.example.com, issued by servers.example.com) and the client (a device of
cell2.devices.example.com) trust only the root example.com, with VERIFY_X509_STRICT on both sides,
so OpenSSL itself checks the profiles: key usages, extended key usages, AKI/SKI, basic constraints.
Each negative control changes one thing (the trusted root, the host name, the certificate's usage)
and must make the handshake fail on at least one side, never hang.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers import CELL2, ROOT, ApiClient, create_hierarchy

SERVER = "mqtt.servers.example.com"
OTHER_ROOT = "other.org"
SOCKET_TIMEOUT = 10.0
"""Seconds any socket operation may block: a broken handshake fails instead of hanging."""

TLS_VERSIONS = [
    pytest.param(ssl.TLSVersion.TLSv1_2, id="TLSv1.2"),
    pytest.param(ssl.TLSVersion.TLSv1_3, id="TLSv1.3"),
]
CLIENT_MESSAGE = b"CONNECT device"
SERVER_REPLY = b"CONNACK "

# OpenSSL's X509_V_ERR_* codes, to tell why a verification failed.
UNTRUSTED_ROOT = {19, 20}  # self-signed certificate in chain; unable to get local issuer
INVALID_PURPOSE = 26
HOSTNAME_MISMATCH = 62


@dataclass(frozen=True)
class Credentials:
    """A certificate with its chain, and its private key, as files for `load_cert_chain`."""

    cert_chain_file: Path
    key_file: Path
    certificate: x509.Certificate


@dataclass(frozen=True)
class Pki:
    root_pem: str
    other_root_pem: str
    server: Credentials
    device: Credentials
    device_id: str
    device_fqdn: str


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


@pytest.fixture(params=["EC_P256", "RSA_2048"])
def pki(request: pytest.FixtureRequest, api: ApiClient, tmp_path: Path) -> Pki:
    key_type: str = request.param
    hierarchy = create_hierarchy(api, key_type=key_type)
    server = api.create("server", fqdn=SERVER, key_type=key_type)
    device = api.create("device", parent_fqdn=CELL2, key_type=key_type)
    other_root = api.create("root", fqdn=OTHER_ROOT, key_type=key_type)
    return Pki(
        root_pem=hierarchy[ROOT]["certificate"],
        other_root_pem=other_root["certificate"],
        server=write_credentials(server, tmp_path, "server"),
        device=write_credentials(device, tmp_path, "device"),
        device_id=device["device_id"],
        device_fqdn=device["fqdn"],
    )


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


# The handshake that must work -------------------------------------------------------------------


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_mutual_tls_handshake_between_server_and_device(pki: Pki, version: ssl.TLSVersion) -> None:
    server, client = handshake(
        server_context(version, pki.server, pki.root_pem),
        client_context(version, pki.device, pki.root_pem),
        SERVER,
    )
    assert server.error is None, server.error
    assert client.error is None, client.error
    assert server.version == client.version == version.name.replace("v1_", "v1.")
    assert server.received == CLIENT_MESSAGE
    assert client.received == SERVER_REPLY + CLIENT_MESSAGE
    # Each side saw exactly the other's issued certificate.
    assert common_name(server.peer) == pki.device_id
    assert server.peer is not None
    assert server.peer["subjectAltName"] == (("DNS", pki.device_fqdn),)
    assert server.peer_der == pki.device.certificate.public_bytes(Encoding.DER)
    assert common_name(client.peer) == SERVER
    assert client.peer_der == pki.server.certificate.public_bytes(Encoding.DER)


# Negative controls ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_client_trusting_another_root_refuses_the_server(pki: Pki, version: ssl.TLSVersion) -> None:
    server, client = handshake(
        server_context(version, pki.server, pki.root_pem),
        client_context(version, pki.device, pki.other_root_pem),
        SERVER,
    )
    assert_failed(server, client)
    assert isinstance(client.error, ssl.SSLCertVerificationError), client.error
    assert client.error.verify_code in UNTRUSTED_ROOT, client.error
    assert client.events == []


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_server_trusting_another_root_refuses_the_device(pki: Pki, version: ssl.TLSVersion) -> None:
    server, client = handshake(
        server_context(version, pki.server, pki.other_root_pem),
        client_context(version, pki.device, pki.root_pem),
        SERVER,
    )
    assert_failed(server, client)
    assert isinstance(server.error, ssl.SSLCertVerificationError), server.error
    assert server.error.verify_code in UNTRUSTED_ROOT, server.error
    assert server.events == []


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_client_checking_a_wrong_host_name_refuses_the_server(
    pki: Pki, version: ssl.TLSVersion
) -> None:
    server, client = handshake(
        server_context(version, pki.server, pki.root_pem),
        client_context(version, pki.device, pki.root_pem),
        "evil.servers.example.com",
    )
    assert_failed(server, client)
    assert isinstance(client.error, ssl.SSLCertVerificationError), client.error
    assert client.error.verify_code == HOSTNAME_MISMATCH, client.error


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_device_certificate_cannot_serve(pki: Pki, version: ssl.TLSVersion) -> None:
    """The host name matches the device's SAN, so only its clientAuth-only usage refuses it."""
    server, client = handshake(
        server_context(version, pki.device, pki.root_pem),
        client_context(version, pki.device, pki.root_pem),
        pki.device_fqdn,
    )
    assert_failed(server, client)
    assert isinstance(client.error, ssl.SSLCertVerificationError), client.error
    assert client.error.verify_code == INVALID_PURPOSE, client.error


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_server_certificate_cannot_authenticate_a_client(pki: Pki, version: ssl.TLSVersion) -> None:
    server, client = handshake(
        server_context(version, pki.server, pki.root_pem),
        client_context(version, pki.server, pki.root_pem),
        SERVER,
    )
    assert_failed(server, client)
    assert isinstance(server.error, ssl.SSLCertVerificationError), server.error
    assert server.error.verify_code == INVALID_PURPOSE, server.error

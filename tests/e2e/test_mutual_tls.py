"""A real mutual-TLS handshake with Python's `ssl` between issued server and device certificates.

The server (mqtt.servers.example.com, issued by servers.example.com) and the client (a device of
cell2.devices.example.com) trust only the root example.com, with VERIFY_X509_STRICT on both sides,
so OpenSSL itself checks the profiles: key usages, extended key usages, AKI/SKI, basic constraints.
Each negative control changes one thing (the trusted root, the host name, the certificate's usage)
and must make the handshake fail on at least one side, never hang.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers import CELL2, ROOT, ApiClient, create_hierarchy
from tests.tls import (
    CLIENT_MESSAGE,
    SERVER,
    SERVER_REPLY,
    TLS_VERSIONS,
    Credentials,
    assert_failed,
    client_context,
    common_name,
    handshake,
    server_context,
    write_credentials,
)

OTHER_ROOT = "other.org"
# OpenSSL's X509_V_ERR_* codes, to tell why a verification failed.
UNTRUSTED_ROOT = {19, 20}  # self-signed certificate in chain; unable to get local issuer
INVALID_PURPOSE = 26
HOSTNAME_MISMATCH = 62


@dataclass(frozen=True)
class Pki:
    root_pem: str
    other_root_pem: str
    server: Credentials
    device: Credentials
    device_id: str
    device_fqdn: str


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

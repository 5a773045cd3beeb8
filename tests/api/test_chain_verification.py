"""Issued chains verify with cryptography.x509.verification, and fail where they must.

Hierarchy (the `hierarchy` fixture, tests.helpers.create_hierarchy): root example.com;
servers.example.com; devices.example.com (path_length 1) with cell1 and cell2 under it, issued
through the HTTP API on the local backend (chains do not depend on where they are stored). Every
positive check has a negative control that differs from it in one thing only: the trusted root,
the name, the usage or the chain.
"""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from chalicelib.names import encode_fqdn
from tests.helpers import (
    CELL1,
    CELL2,
    DEVICE_CA_PARENT,
    ROOT,
    SERVER_CA,
    ApiClient,
    load_pem_chain,
    verify_client,
    verify_server,
)

SERVER = "mqtt.servers.example.com"
EXTRA_DNS = "broker.example.net"
EXTRA_IP = "127.0.0.1"
OTHER_ROOT = "other.org"
pytestmark = pytest.mark.parametrize("backend", ["local"], indirect=True)


def certificate_of(response: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(response["certificate"].encode())


def subjects(certificates: list[x509.Certificate]) -> list[str]:
    return [certificate.subject.rfc4514_string() for certificate in certificates]


def assert_chain_links_up_to(response: dict[str, Any], root: x509.Certificate) -> None:
    """The response's chain is issuer first, each next one the issuer of the previous, root last."""
    leaf = certificate_of(response)
    chain = load_pem_chain(response["chain"])
    assert chain, "a non-root certificate must come with its chain"
    assert chain[0].subject == leaf.issuer
    for child, parent in itertools.pairwise(chain):
        assert child.issuer == parent.subject
        child.verify_directly_issued_by(parent)
    assert chain[-1] == root
    assert root.issuer == root.subject


@pytest.fixture
def root_pem(hierarchy: dict[str, dict[str, Any]]) -> str:
    return hierarchy[ROOT]["certificate"]


@pytest.fixture
def server(backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return backend_api.create("server", fqdn=SERVER, sans=[EXTRA_DNS, EXTRA_IP])


@pytest.fixture
def devices(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    return {cell: backend_api.create("device", parent_fqdn=cell) for cell in (CELL1, CELL2)}


@pytest.fixture
def other_root_pem(backend_api: ApiClient) -> str:
    return backend_api.create("root", fqdn=OTHER_ROOT)["certificate"]


# Positive paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hierarchy", ["EC_P256", "EC_P384", "RSA_2048"], indirect=True)
def test_server_and_device_chains_verify_for_each_key_type(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    key_type = hierarchy[ROOT]["key_type"]
    root_pem = hierarchy[ROOT]["certificate"]
    server = backend_api.create("server", fqdn=SERVER, key_type=key_type)
    device = backend_api.create("device", parent_fqdn=CELL2, key_type=key_type)
    assert subjects(verify_server(server, root_pem, SERVER)) == [
        f"CN={SERVER}",
        f"CN={SERVER_CA}",
        f"CN={ROOT}",
    ]
    assert subjects(verify_client(device, root_pem).chain) == [
        f"CN={device['device_id']}",
        f"CN={CELL2}",
        f"CN={DEVICE_CA_PARENT}",
        f"CN={ROOT}",
    ]


def test_server_certificate_verifies_for_its_name_and_its_extra_sans(
    server: dict[str, Any], root_pem: str
) -> None:
    for name in (SERVER, EXTRA_DNS):
        chain = verify_server(server, root_pem, name)
        assert chain[0] == certificate_of(server)
        assert chain[-1] == x509.load_pem_x509_certificate(root_pem.encode())
    verifier = (
        PolicyBuilder()
        .store(Store(load_pem_chain(root_pem)))
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address(EXTRA_IP)))
    )
    chain = verifier.verify(certificate_of(server), load_pem_chain(server["chain"]))
    assert subjects(chain) == [f"CN={SERVER}", f"CN={SERVER_CA}", f"CN={ROOT}"]


def test_device_certificates_from_both_cells_verify_as_clients(
    devices: dict[str, dict[str, Any]], root_pem: str
) -> None:
    for cell, device in devices.items():
        verified = verify_client(device, root_pem)
        assert verified.chain[0] == certificate_of(device)
        assert subjects(verified.chain[1:]) == [
            f"CN={cell}",
            f"CN={DEVICE_CA_PARENT}",
            f"CN={ROOT}",
        ]
        assert verified.subjects == [x509.DNSName(f"{device['device_id']}.{cell}")]
    assert devices[CELL1]["device_id"] != devices[CELL2]["device_id"]


def test_response_chains_run_from_the_issuer_to_the_root(
    hierarchy: dict[str, dict[str, Any]],
    server: dict[str, Any],
    devices: dict[str, dict[str, Any]],
) -> None:
    root = certificate_of(hierarchy[ROOT])
    assert hierarchy[ROOT]["chain"] == ""
    for name in (SERVER_CA, DEVICE_CA_PARENT, CELL1, CELL2):
        assert_chain_links_up_to(hierarchy[name], root)
    assert_chain_links_up_to(server, root)
    assert subjects(load_pem_chain(server["chain"])) == [f"CN={SERVER_CA}", f"CN={ROOT}"]
    for cell, device in devices.items():
        assert_chain_links_up_to(device, root)
        assert subjects(load_pem_chain(device["chain"])) == [
            f"CN={cell}",
            f"CN={DEVICE_CA_PARENT}",
            f"CN={ROOT}",
        ]


# Negative controls ------------------------------------------------------------------------------


def test_wrong_root_is_rejected(
    backend_api: ApiClient,
    server: dict[str, Any],
    devices: dict[str, dict[str, Any]],
    root_pem: str,
    other_root_pem: str,
) -> None:
    with pytest.raises(VerificationError):
        verify_server(server, other_root_pem, SERVER)
    with pytest.raises(VerificationError):
        verify_client(devices[CELL1], other_root_pem)
    # And the other way round: other.org's own device is foreign to example.com's store.
    foreign_device = backend_api.create("device", parent_fqdn=OTHER_ROOT)
    assert verify_client(foreign_device, other_root_pem).chain[
        -1
    ] == x509.load_pem_x509_certificate(other_root_pem.encode())
    with pytest.raises(VerificationError):
        verify_client(foreign_device, root_pem)


@pytest.mark.parametrize("wrong_name", ["evil.example.com", SERVER_CA, "servers.example.com.evil"])
def test_wrong_dns_name_is_rejected(server: dict[str, Any], root_pem: str, wrong_name: str) -> None:
    with pytest.raises(VerificationError):
        verify_server(server, root_pem, wrong_name)


def test_device_certificate_is_refused_by_the_server_verifier(
    devices: dict[str, dict[str, Any]], root_pem: str
) -> None:
    """The device's own DNS SAN is asked for, so only its clientAuth-only usage can refuse it."""
    device = devices[CELL1]
    with pytest.raises(VerificationError):
        verify_server(device, root_pem, device["fqdn"])


def test_server_certificate_is_refused_by_the_client_verifier(
    server: dict[str, Any], root_pem: str
) -> None:
    with pytest.raises(VerificationError):
        verify_client(server, root_pem)


def test_chain_missing_an_intermediate_is_rejected(
    server: dict[str, Any],
    devices: dict[str, dict[str, Any]],
    root_pem: str,
) -> None:
    device = devices[CELL1]
    cell1, devices_ca, root = load_pem_chain(device["chain"])
    without_cell = {**device, "chain": devices_ca.public_bytes(Encoding.PEM).decode()}
    with pytest.raises(VerificationError):
        verify_client(without_cell, root_pem)
    without_devices_ca = {**device, "chain": cell1.public_bytes(Encoding.PEM).decode()}
    with pytest.raises(VerificationError):
        verify_client(without_devices_ca, root_pem)
    with pytest.raises(VerificationError):
        verify_server({**server, "chain": ""}, root_pem, SERVER)
    # The sibling cell's chain is complete but does not contain this device's issuer.
    with pytest.raises(VerificationError):
        verify_client({**device, "chain": devices[CELL2]["chain"]}, root_pem)
    assert root == x509.load_pem_x509_certificate(root_pem.encode())


# Reading back -----------------------------------------------------------------------------------


def test_get_returns_the_same_certificate_and_chain_which_verifies(
    backend_api: ApiClient,
    server: dict[str, Any],
    devices: dict[str, dict[str, Any]],
    root_pem: str,
) -> None:
    device = devices[CELL2]
    for issued in (server, device):
        for name in (issued["fqdn"], encode_fqdn(issued["fqdn"])):
            response = backend_api.get(f"/certificates/{name}")
            assert response.status_code == 200, response.body
            assert response.body["certificate"] == issued["certificate"]
            assert response.body["chain"] == issued["chain"]
            assert "private_key" not in response.body
    fetched_server = backend_api.get(f"/certificates/{encode_fqdn(SERVER)}").body
    assert verify_server(fetched_server, root_pem, SERVER)[0] == certificate_of(server)
    fetched_device = backend_api.get(f"/certificates/{device['fqdn']}").body
    assert verify_client(fetched_device, root_pem).chain[0] == certificate_of(device)
    assert "." not in encode_fqdn(SERVER)

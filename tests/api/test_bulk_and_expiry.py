"""Bulk device issuance, the expiry and status filters of the list, and Ed25519 devices.

Bulk requests are all-or-nothing: one bad count or CSR is a 400 naming it and stores nothing.
Expiry is checked with lifetimes far apart (10, 100 and 300 days against thresholds of 50 and
200), so no assertion depends on how long the test takes.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chalicelib import wiring
from chalicelib.api.fields import MAX_BULK_BY_KEY_TYPE
from chalicelib.config import load_settings
from tests.backends import Backend
from tests.helpers import (
    CELL1,
    CELL2,
    DEVICE_CA_PARENT,
    ROOT,
    SERVER_CA,
    ApiClient,
    list_all,
    verify_client,
    verify_server,
)

MAX_BULK = 1000
RSA_4096_BULK = MAX_BULK_BY_KEY_TYPE["RSA_4096"]
BULK_SIZE = {"local": MAX_BULK, "aws": 25}
"""The largest bulk locally. On AWS, under moto, every event of a bulk crosses moto's EventBridge
and SQS, whose cost grows with the queue (a bulk of 1000 took a minute of the suite); 25 devices
are more than the S3 path's 16 concurrent writers and take three PutEvents calls of at most ten
entries (the test counts both), the code a bulk of 1000 runs."""
SOCKET_TIMEOUT = 10.0


@pytest.fixture
def aws_calls(backend: Backend) -> list[tuple[str, int]]:
    """On AWS, each API call the service makes from here on, as (operation, entries given);
    the service is built again on a session that records them. Nothing locally."""
    calls: list[tuple[str, int]] = []
    if backend.name == "aws":

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.name, len(params.get("Entries", []))))

        session = boto3.session.Session()
        session.events.register("before-parameter-build", record)
        wiring.override_service(wiring.build_service(load_settings(), boto_session=session))
    return calls


def private_key(kind: str) -> CertificateIssuerPrivateKeyTypes:
    if kind == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "RSA_2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key({"EC_P256": ec.SECP256R1(), "EC_P384": ec.SECP384R1()}[kind])


def csr_pem(key: CertificateIssuerPrivateKeyTypes, name: str = "bulk.example.org") -> str:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, algorithm)
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def public_key_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def leaf_of(issued: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued["certificate"].encode())


def assert_rejected(
    api: ApiClient, backend: Backend, path: str, body: Any, status: int, field: str
) -> None:
    before = backend.snapshot()
    response = api.post(path, body) if body is not None else api.get(path)
    assert response.status_code == status, response.body
    message = response.body["Message"]
    assert message.startswith(field), f"{message!r} does not name {field!r}"
    assert not message[len(field) : len(field) + 1].isalnum(), message
    assert backend.snapshot() == before


# Bulk by count -------------------------------------------------------------------------------


def with_chain(item: dict[str, Any], bulk: dict[str, Any]) -> dict[str, Any]:
    """A bulk item with the chain its response gives once for all: a single issuance's shape."""
    return {**item, "chain": bulk["chain"]}


def test_bulk_count_issues_unique_verifiable_devices_listed_in_the_inventory(
    backend_api: ApiClient,
    backend: Backend,
    hierarchy: dict[str, dict[str, Any]],
    aws_calls: list[tuple[str, int]],
) -> None:
    size = BULK_SIZE[backend.name]
    response = backend_api.post(
        "/certificates/device", {"parent_fqdn": CELL1, "count": size, "validity_days": 30}
    )

    assert response.status_code == 201, response.body
    if backend.name == "aws":  # one write per device; the events in batches of ten
        assert [name for name, _ in aws_calls].count("PutObject") == size
        assert [entries for name, entries in aws_calls if name == "PutEvents"] == [10, 10, 5]
    assert set(response.body) == {"items", "chain", "count"}
    assert response.body["count"] == size
    assert response.body["chain"] == hierarchy[CELL1]["certificate"] + hierarchy[CELL1]["chain"]
    devices = [with_chain(item, response.body) for item in response.body["items"]]
    assert all("chain" not in item for item in response.body["items"])
    assert len(devices) == size
    assert len({device["serial"] for device in devices}) == size
    assert len({device["fqdn"] for device in devices}) == size
    assert len({device["device_id"] for device in devices}) == size
    assert len({device["private_key"] for device in devices}) == size
    leaves = [leaf_of(device) for device in devices]
    assert len({public_key_der(leaf.public_key()) for leaf in leaves}) == size
    root_pem = hierarchy[ROOT]["certificate"]
    for device, leaf in zip(devices, leaves, strict=True):
        assert device["fqdn"] == f"{device['device_id']}.{CELL1}"
        assert device["type"] == "Client" and device["key_type"] == "EC_P256"
        verify_client(device, root_pem)
        key = serialization.load_pem_private_key(device["private_key"].encode(), None)
        assert public_key_der(key.public_key()) == public_key_der(leaf.public_key())

    page = backend_api.get(f"/certificates?parent={CELL1}&limit=1000")
    assert page.status_code == 200
    assert page.body["next_token"] is None
    listed = {item["fqdn"]: item for item in page.body["items"]}
    assert sorted(listed) == sorted(device["fqdn"] for device in devices)
    assert all(listed[d["fqdn"]]["serial"] == d["serial"] for d in devices)
    assert {item["status"] for item in listed.values()} == {"active"}
    assert backend_api.get(f"/certificates?parent={CELL2}").body["items"] == []


def test_bulk_count_of_one_is_still_a_list_and_takes_a_key_type(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    response = backend_api.post(
        "/certificates/device", {"parent_fqdn": CELL1, "count": 3, "key_type": "ED25519"}
    )
    single = backend_api.post("/certificates/device", {"parent_fqdn": CELL1, "count": 1})

    assert response.status_code == 201, response.body
    assert response.body["count"] == 3
    assert [device["key_type"] for device in response.body["items"]] == ["ED25519"] * 3
    for item in response.body["items"]:
        device = with_chain(item, response.body)
        assert isinstance(leaf_of(device).public_key(), ed25519.Ed25519PublicKey)
        verify_client(device, hierarchy[ROOT]["certificate"])
    assert single.status_code == 201, single.body
    assert single.body["count"] == 1 and len(single.body["items"]) == 1


# Bulk by CSRs --------------------------------------------------------------------------------


def test_bulk_csrs_keep_the_order_and_keys_of_the_requests(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    kinds = ["EC_P256", "EC_P384", "RSA_2048", "ED25519", "EC_P256"]
    keys = [private_key(kind) for kind in kinds]

    response = backend_api.post(
        "/certificates/device",
        {
            "parent_fqdn": CELL1,
            "csrs": [csr_pem(key, f"d{n}.example.org") for n, key in enumerate(keys)],
        },
    )

    assert response.status_code == 201, response.body
    assert response.body["count"] == len(keys)
    devices = [with_chain(item, response.body) for item in response.body["items"]]
    assert [public_key_der(leaf_of(device).public_key()) for device in devices] == [
        public_key_der(key.public_key()) for key in keys
    ]
    assert [device["key_type"] for device in devices] == kinds
    assert all("private_key" not in device for device in devices)
    assert len({device["fqdn"] for device in devices}) == len(keys)
    for device in devices:
        leaf = leaf_of(device)
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [name.value for name in names] == [device["device_id"]]
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        verify_client(device, hierarchy[ROOT]["certificate"])
        private_key_response = backend_api.get(f"/certificates/{device['fqdn']}/private-key")
        assert private_key_response.status_code == 404
    listed, _ = list_all(backend_api, f"parent={CELL1}", limit=1000)
    assert sorted(item["fqdn"] for item in listed) == sorted(d["fqdn"] for d in devices)


def flipped_signature(pem: str) -> str:
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


def good_csrs(count: int) -> list[str]:
    return [csr_pem(private_key("EC_P256")) for _ in range(count)]


BAD_BULK_BODIES: dict[str, tuple[Any, str]] = {
    # name: (extra body fields, the field the 400 names)
    "count-zero": ({"count": 0}, "count"),
    "count-1001": ({"count": MAX_BULK + 1}, "count"),
    "count-negative": ({"count": -5}, "count"),
    "count-string": ({"count": "5"}, "count"),
    "count-true": ({"count": True}, "count"),
    "count-float": ({"count": 2.5}, "count"),
    "count-with-csrs": ({"count": 2, "csrs": "CSRS"}, "csrs"),
    "rsa-2048-over-its-limit": (
        {"count": MAX_BULK_BY_KEY_TYPE["RSA_2048"] + 1, "key_type": "RSA_2048"},
        "count",
    ),
    "rsa-3072-over-its-limit": (
        {"count": MAX_BULK_BY_KEY_TYPE["RSA_3072"] + 1, "key_type": "RSA_3072"},
        "count",
    ),
    "rsa-4096-over-its-limit": (
        {"count": MAX_BULK_BY_KEY_TYPE["RSA_4096"] + 1, "key_type": "RSA_4096"},
        "count",
    ),
    "csrs-empty": ({"csrs": []}, "csrs"),
    "csrs-not-a-list": ({"csrs": "CSR"}, "csrs"),
    "csrs-1001": ({"csrs": "1001"}, "csrs"),
    "csrs-with-key-type": ({"csrs": "CSRS", "key_type": "EC_P256"}, "key_type"),
    "csrs-with-csr": ({"csr": "CSR", "csrs": "CSRS"}, "csrs"),
    "csrs-one-bad-signature": ({"csrs": "BAD_SIGNATURE_AT_2"}, "csrs[2]"),
    "csrs-one-not-a-string": ({"csrs": "NUMBER_AT_3"}, "csrs[3]"),
    "csrs-one-garbage": ({"csrs": "GARBAGE_AT_0"}, "csrs[0]"),
}


def bulk_body(fields: dict[str, Any]) -> dict[str, Any]:
    """Fill the placeholders: CSR lists are built per test so every key is fresh."""
    body: dict[str, Any] = {"parent_fqdn": CELL1}
    for name, value in fields.items():
        if value == "CSR":
            value = good_csrs(1)[0]
        elif value == "CSRS":
            value = good_csrs(3)
        elif value == "1001":
            value = good_csrs(1) * (MAX_BULK + 1)
        elif value == "BAD_SIGNATURE_AT_2":
            value = good_csrs(4)
            value[2] = flipped_signature(value[2])
        elif value == "NUMBER_AT_3":
            value = [*good_csrs(3), 17]
        elif value == "GARBAGE_AT_0":
            value = [
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
            ]
            value += good_csrs(2)
        body[name] = value
    return body


def test_bad_bulk_request_is_a_400_and_stores_nothing(
    backend_api: ApiClient,
    backend: Backend,
    hierarchy: dict[str, dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    for case, (fields, field) in BAD_BULK_BODIES.items():
        with subtests.test(case=case):
            body = bulk_body(fields)
            assert_rejected(backend_api, backend, "/certificates/device", body, 400, field)


def test_a_bulk_of_1000_csrs_fits_the_device_body_limit(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    """1000 PEM CSRs are well over 64 KiB; the device route takes them (here refused for one bad
    CSR at the end, so nothing is issued and the test stays fast). Under a cell whose key is a
    file: a KMS cell takes at most 250 (tests/api/test_kms_ca_keys.py)."""
    cell = backend_api.create(
        "intermediate", fqdn="file-cell.devices.example.com", key_store="file"
    )["fqdn"]
    csrs = good_csrs(1) * MAX_BULK
    csrs[-1] = flipped_signature(csrs[-1])
    body = {"parent_fqdn": cell, "csrs": csrs}
    assert len(json.dumps(body)) > 64 * 1024

    assert_rejected(
        backend_api, backend, "/certificates/device", body, 400, f"csrs[{MAX_BULK - 1}]"
    )


# Expiry and status filters -------------------------------------------------------------------


@pytest.fixture
def lifetimes(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Three devices of cell1 living 10, 100 and 300 days, and one in cell2 living 10 days."""
    devices = {
        days: backend_api.create("device", parent_fqdn=CELL1, validity_days=days)
        for days in (10, 100, 300)
    }
    backend_api.create("device", parent_fqdn=CELL2, validity_days=10)
    return devices


def fqdns(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["fqdn"] for item in items)


def expected(lifetimes: dict[int, dict[str, Any]], *days: int) -> list[str]:
    return sorted(lifetimes[day]["fqdn"] for day in days)


def test_expiring_within_days_returns_the_devices_that_expire_by_then(
    backend_api: ApiClient, lifetimes: dict[int, dict[str, Any]]
) -> None:
    def expiring(days: int) -> list[str]:
        items, _ = list_all(backend_api, f"parent={CELL1}&expiring_within_days={days}", 100)
        return fqdns(items)

    assert expiring(50) == expected(lifetimes, 10)
    assert expiring(200) == expected(lifetimes, 10, 100)
    assert expiring(36500) == expected(lifetimes, 10, 100, 300)
    assert expiring(0) == []
    soonest, _ = list_all(backend_api, f"parent={CELL1}&expiring_within_days=50", 100)
    assert soonest[0]["not_after"] == lifetimes[10]["not_after"]
    assert soonest[0]["status"] == "active"


def test_expiry_combines_with_status_and_paging(
    backend_api: ApiClient, lifetimes: dict[int, dict[str, Any]]
) -> None:
    revoked = backend_api.post(f"/certificates/{lifetimes[10]['fqdn']}/revoke", {})
    assert revoked.status_code == 200, revoked.body
    within = f"parent={CELL1}&expiring_within_days=200"

    active, _ = list_all(backend_api, f"{within}&status=active", 100)
    assert fqdns(active) == expected(lifetimes, 100)
    revoked_items, _ = list_all(backend_api, f"{within}&status=revoked", 100)
    assert fqdns(revoked_items) == expected(lifetimes, 10)
    assert [item["status"] for item in revoked_items] == ["revoked"]
    all_active, _ = list_all(backend_api, f"parent={CELL1}&status=active", 100)
    assert fqdns(all_active) == expected(lifetimes, 100, 300)

    paged, pages = list_all(backend_api, within, limit=1)
    assert fqdns(paged) == expected(lifetimes, 10, 100)
    assert len(paged) == 2  # each exactly once
    assert pages >= 2
    paged_active, _ = list_all(backend_api, f"{within}&status=active", limit=1)
    assert fqdns(paged_active) == expected(lifetimes, 100)


BAD_FILTERS: dict[str, tuple[str, str]] = {
    # name: (query, the parameter the 400 names)
    "negative": (f"parent={CELL1}&expiring_within_days=-1", "expiring_within_days"),
    "abc": (f"parent={CELL1}&expiring_within_days=abc", "expiring_within_days"),
    "36501": (f"parent={CELL1}&expiring_within_days=36501", "expiring_within_days"),
    "fraction": (f"parent={CELL1}&expiring_within_days=1.5", "expiring_within_days"),
    "empty": (f"parent={CELL1}&expiring_within_days=", "expiring_within_days"),
    "bogus-status": (f"parent={CELL1}&status=bogus", "status"),
    "uppercase-status": (f"parent={CELL1}&status=ACTIVE", "status"),
    "expired-status": (f"parent={CELL1}&expiring_within_days=5&status=expired", "status"),
}


def test_bad_filters_are_a_400_naming_the_parameter(
    backend_api: ApiClient,
    backend: Backend,
    lifetimes: dict[int, dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    for case, (query, field) in BAD_FILTERS.items():
        with subtests.test(case=case):
            assert_rejected(backend_api, backend, f"/certificates?{query}", None, 400, field)


# Ed25519 -------------------------------------------------------------------------------------


def test_ed25519_device_verifies_and_works_in_a_tls13_handshake(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1, key_type="ED25519")
    server = backend_api.create("server", fqdn=f"mqtt.{SERVER_CA}")
    root_pem = hierarchy[ROOT]["certificate"]

    assert device["key_type"] == "ED25519"
    leaf = leaf_of(device)
    assert isinstance(leaf.public_key(), ed25519.Ed25519PublicKey)
    key = serialization.load_pem_private_key(device["private_key"].encode(), None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert public_key_der(key.public_key()) == public_key_der(leaf.public_key())
    verified = verify_client(device, root_pem)
    assert [c.subject for c in verified.chain][-1] == leaf_of(hierarchy[ROOT]).subject
    leaf.verify_directly_issued_by(leaf_of(hierarchy[CELL1]))
    verify_server(server, root_pem, f"mqtt.{SERVER_CA}")

    peer_der, received = mutual_tls13(tmp_path, server, device, root_pem, f"mqtt.{SERVER_CA}")
    assert peer_der == leaf.public_bytes(serialization.Encoding.DER)
    assert received == b"hello from an ed25519 device"

    # Negative control: a server that trusts another root refuses the same device.
    other_root = backend_api.create("root", fqdn="other.org")
    with pytest.raises(ssl.SSLError):
        mutual_tls13(
            tmp_path, server, device, root_pem, f"mqtt.{SERVER_CA}", other_root["certificate"]
        )


def _write(directory: Path, name: str, issued: dict[str, Any]) -> tuple[Path, Path]:
    chain_file = directory / f"{name}.crt"
    chain_file.write_text(issued["certificate"] + issued["chain"])
    key_file = directory / f"{name}.key"
    key_file.write_text(issued["private_key"])
    key_file.chmod(0o600)
    return chain_file, key_file


def _context(purpose: int, root_pem: str, chain_file: Path, key_file: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cadata=root_pem)
    context.load_cert_chain(chain_file, key_file)
    return context


def mutual_tls13(
    directory: Path,
    server: dict[str, Any],
    device: dict[str, Any],
    root_pem: str,
    server_name: str,
    server_trusts: str | None = None,
) -> tuple[bytes | None, bytes]:
    """A TLS 1.3 mutual-auth exchange over a socket pair; (client cert the server saw, data).

    Raises the server side's SSLError when the handshake fails there."""
    server_context = _context(
        ssl.PROTOCOL_TLS_SERVER, server_trusts or root_pem, *_write(directory, "server", server)
    )
    client_context = _context(ssl.PROTOCOL_TLS_CLIENT, root_pem, *_write(directory, "dev", device))
    server_socket, client_socket = socket.socketpair()
    server_socket.settimeout(SOCKET_TIMEOUT)
    client_socket.settimeout(SOCKET_TIMEOUT)
    seen: dict[str, Any] = {}

    def serve() -> None:
        try:
            with server_context.wrap_socket(server_socket, server_side=True) as tls:
                seen["peer"] = tls.getpeercert(binary_form=True)
                seen["data"] = tls.recv(1024)
                tls.sendall(b"ok")
        except OSError as err:
            seen["error"] = err

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with client_context.wrap_socket(client_socket, server_hostname=server_name) as tls:
            tls.sendall(b"hello from an ed25519 device")
            tls.recv(16)  # in TLS 1.3 the server's verdict on our certificate arrives here
    except OSError as err:
        seen.setdefault("client_error", err)
    finally:
        client_socket.close()
        thread.join(timeout=SOCKET_TIMEOUT * 3)
    assert not thread.is_alive(), "the TLS server thread did not finish"
    if "error" in seen:
        raise seen["error"]
    assert "client_error" not in seen, seen
    return seen.get("peer"), seen.get("data", b"")


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        ("root", {"fqdn": "edwards.org"}),
        ("intermediate", {"fqdn": f"cell3.{DEVICE_CA_PARENT}"}),
        ("server", {"fqdn": f"mqtt.{SERVER_CA}"}),
    ],
)
def test_ed25519_is_for_devices_only(
    backend_api: ApiClient,
    backend: Backend,
    hierarchy: dict[str, dict[str, Any]],
    kind: str,
    body: dict[str, Any],
) -> None:
    assert_rejected(
        backend_api,
        backend,
        f"/certificates/{kind}",
        {**body, "key_type": "ED25519"},
        400,
        "key_type",
    )
    # Negative control: the same request with an EC key is accepted.
    assert (
        backend_api.post(f"/certificates/{kind}", {**body, "key_type": "EC_P256"}).status_code
        == 201
    )


# Platform limits -----------------------------------------------------------------------------

LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def lambda_payload_size(response: Any) -> int:
    """The size of the Lambda proxy response API Gateway receives: the body is a JSON string
    inside a JSON document, so its quotes and line breaks are escaped once more."""
    return len(json.dumps({"statusCode": response.status_code, "body": response.body.decode()}))


@pytest.mark.slow
def test_the_largest_accepted_bulk_responses_fit_lambdas_6_mb(
    api: ApiClient, subtests: pytest.Subtests
) -> None:
    organization = "O" * 64  # the longest subject a caller may ask for, on every certificate
    api.create("root", fqdn=ROOT, organization=organization, state="S" * 128)
    api.create("intermediate", fqdn=CELL1, path_length=0, organization=organization)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    one_csr = csr_pem(rsa_key)  # the largest key a CSR may bring: the largest certificates
    fitting = (1024 * 1024 - 200) // (len(json.dumps(one_csr)) + 2)  # as many as the body takes
    largest_csrs = [one_csr] * (min(MAX_BULK, fitting) + 1)
    bodies = {
        "EC_P384 x 1000": {"count": MAX_BULK, "key_type": "EC_P384"},
        f"RSA_4096 x {RSA_4096_BULK}": {"count": RSA_4096_BULK, "key_type": "RSA_4096"},
        f"RSA CSRs x {len(largest_csrs) - 1}": {"csrs": largest_csrs[:-1]},
    }
    for case, fields in bodies.items():
        with subtests.test(case=case):
            response = api.chalice_client.http.post(
                "/certificates/device",
                headers={"Content-Type": "application/json"},
                body=json.dumps({"parent_fqdn": CELL1, "organization": organization, **fields}),
            )
            assert response.status_code == 201, response.body[:300]
            size = lambda_payload_size(response)
            assert size < LAMBDA_RESPONSE_LIMIT * 0.5, f"{case}: {size} bytes"

"""Bundles and leaf private keys: what a device or broker downloads, and what is never served.

PEM and fullchain are text; PKCS#12 is a binary body, which API Gateway (and Chalice's test
client) only returns to a client that accepts it, so those requests send `Accept`. Every read
here is checked to write nothing on either backend.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tests.backends import Backend
from tests.helpers import (
    CELL1,
    CELL2,
    NON_ASCII_PASSWORD,
    ROOT,
    SERVER_CA,
    ApiClient,
    assert_pkcs12_opens,
    binary_accepts,
    create_hierarchy,
    load_pem_chain,
    verify_client,
)

PASSWORD = "correct horse battery staple"
SERVER_FQDN = f"mqtt.{SERVER_CA}"
PKCS12_TYPE = "application/x-pkcs12"
PEM_TYPE = "application/x-pem-file"


@pytest.fixture
def issued(backend_api: ApiClient) -> dict[str, dict[str, Any]]:
    """The example hierarchy, a device in cell1 and a server certificate (each with its key)."""
    certificates = create_hierarchy(backend_api)
    certificates["device"] = backend_api.create("device", parent_fqdn=CELL1)
    certificates["server"] = backend_api.create("server", fqdn=SERVER_FQDN)
    return certificates


def request(
    api: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """The raw Chalice response; `Accept: */*` as a browser or curl sends it."""
    all_headers = {"Accept": "*/*", **(headers or {})}
    if method == "GET":
        return api.chalice_client.http.get(path, headers=all_headers)
    all_headers["Content-Type"] = "application/json"
    raw = body if isinstance(body, str) else json.dumps(body)
    return api.chalice_client.http.post(path, headers=all_headers, body=raw)


def text_of(response: Any) -> str:
    return response.body.decode() if isinstance(response.body, bytes) else response.body


def error_message(response: Any, status: int) -> str:
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"Code", "Message"}
    return str(body["Message"])


def split_first_certificate(pem: str) -> tuple[str, str]:
    end = "-----END CERTIFICATE-----\n"
    first, _, rest = pem.partition(end)
    return first + end, rest


def public_key_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def assert_pkcs12_holds(content: bytes, certificate: dict[str, Any]) -> None:
    """Key, leaf and chain (issuer first, root last) are the ones issued."""
    bundle = pkcs12.load_pkcs12(content, PASSWORD.encode())
    leaf = x509.load_pem_x509_certificate(certificate["certificate"].encode())
    assert bundle.key is not None and bundle.cert is not None
    assert public_key_der(bundle.key.public_key()) == public_key_der(leaf.public_key())
    issued_key = serialization.load_pem_private_key(certificate["private_key"].encode(), None)
    assert bundle.key.private_numbers() == issued_key.private_numbers()  # type: ignore[union-attr]
    assert der(bundle.cert.certificate) == der(leaf)
    assert bundle.cert.friendly_name == certificate["fqdn"].encode()
    chain = load_pem_chain(certificate["chain"])
    assert len(chain) >= 2
    assert [der(extra.certificate) for extra in bundle.additional_certs] == [
        der(ca) for ca in chain
    ]


# PEM and fullchain ---------------------------------------------------------------------------


def test_pem_bundle_is_just_the_certificate(
    backend_api: ApiClient, backend: Backend, issued: dict[str, dict[str, Any]]
) -> None:
    device = issued["device"]
    before = backend.snapshot()

    response = request(backend_api, "GET", f"/certificates/{device['fqdn']}/bundle?format=pem")
    default = request(backend_api, "GET", f"/certificates/{device['fqdn']}/bundle")

    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == PEM_TYPE
    assert text_of(response) == device["certificate"]
    assert len(load_pem_chain(text_of(response))) == 1
    assert "PRIVATE KEY" not in text_of(response)
    assert text_of(default) == device["certificate"]  # pem is the default
    assert backend.snapshot() == before


def test_fullchain_bundle_is_the_certificate_then_its_chain_in_order(
    backend_api: ApiClient, backend: Backend, issued: dict[str, dict[str, Any]]
) -> None:
    device = issued["device"]
    before = backend.snapshot()

    response = request(
        backend_api, "GET", f"/certificates/{device['fqdn']}/bundle?format=fullchain"
    )

    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == PEM_TYPE
    certificates = load_pem_chain(text_of(response))
    expected = [device, issued[CELL1], issued["devices.example.com"], issued[ROOT]]
    assert [der(c) for c in certificates] == [
        der(x509.load_pem_x509_certificate(item["certificate"].encode())) for item in expected
    ]
    for child, parent in itertools.pairwise(certificates):
        child.verify_directly_issued_by(parent)
    # The bundle alone verifies as a client chain: its first block the leaf, the rest the chain.
    leaf_pem, chain_pem = split_first_certificate(text_of(response))
    verify_client({"certificate": leaf_pem, "chain": chain_pem}, issued[ROOT]["certificate"])
    assert "PRIVATE KEY" not in text_of(response)
    assert backend.snapshot() == before


def test_bundles_of_a_ca_are_served_without_its_key(
    backend_api: ApiClient, backend: Backend, issued: dict[str, dict[str, Any]]
) -> None:
    before = backend.snapshot()

    response = request(backend_api, "GET", f"/certificates/{CELL1}/bundle?format=fullchain")

    assert response.status_code == 200, response.body
    assert text_of(response) == issued[CELL1]["certificate"] + issued[CELL1]["chain"]
    assert "PRIVATE KEY" not in text_of(response)
    assert backend.snapshot() == before


def test_chain_bundle_is_a_cas_trust_chain_and_a_leafs_issuers(
    backend_api: ApiClient, backend: Backend, issued: dict[str, dict[str, Any]]
) -> None:
    before = backend.snapshot()

    def chain_of(fqdn: str) -> list[str]:
        response = request(backend_api, "GET", f"/certificates/{fqdn}/bundle?format=chain")
        assert response.status_code == 200, response.body
        assert response.headers["Content-Type"] == PEM_TYPE
        assert f"{fqdn}.chain.pem" in response.headers["Content-Disposition"]
        assert "PRIVATE KEY" not in text_of(response)
        return [cert.subject.rfc4514_string() for cert in load_pem_chain(text_of(response))]

    def names(*fqdns: str) -> list[str]:
        return [
            x509.load_pem_x509_certificate(
                issued[fqdn]["certificate"].encode()
            ).subject.rfc4514_string()
            for fqdn in fqdns
        ]

    assert chain_of(CELL1) == names(CELL1, "devices.example.com", ROOT)
    assert chain_of(ROOT) == names(ROOT)
    assert chain_of(issued["device"]["fqdn"]) == names(CELL1, "devices.example.com", ROOT)
    assert chain_of(SERVER_FQDN) == names(SERVER_CA, ROOT)
    assert backend.snapshot() == before


def test_a_cells_chain_bundle_as_a_brokers_ca_file_verifies_its_devices(
    api: ApiClient,
) -> None:
    """One call gives a broker (mosquitto's `cafile`) what it needs to verify the devices of a
    cell that present only their own certificate."""
    issued = create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)
    other_cell_device = api.create("device", parent_fqdn=CELL2)
    cafile = request(api, "GET", f"/certificates/{CELL1}/bundle?format=chain")
    certificates = load_pem_chain(text_of(cafile))
    roots = [cert for cert in certificates if cert.subject == cert.issuer]
    assert [der(root) for root in roots] == [der(load_pem_chain(issued[ROOT]["certificate"])[0])]
    intermediates = [cert for cert in certificates if cert.subject != cert.issuer]

    def verify(leaf_pem: str, trusted: list[x509.Certificate]) -> None:
        verifier = PolicyBuilder().store(Store(trusted)).build_client_verifier()
        verifier.verify(x509.load_pem_x509_certificate(leaf_pem.encode()), intermediates)

    verify(device["certificate"], roots)  # the root trusted, the rest as intermediates
    verify(device["certificate"], certificates)  # every certificate of the file trusted
    with pytest.raises(VerificationError):  # another cell's device is not covered by it
        verify(other_cell_device["certificate"], roots)


# PKCS#12 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "server"])
def test_pkcs12_by_post_body_holds_key_leaf_and_chain(
    backend_api: ApiClient, backend: Backend, issued: dict[str, dict[str, Any]], kind: str
) -> None:
    certificate = issued[kind]
    before = backend.snapshot()

    response = request(
        backend_api,
        "POST",
        f"/certificates/{certificate['fqdn']}/bundle",
        {"format": "pkcs12", "password": PASSWORD},
    )

    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == PKCS12_TYPE
    assert isinstance(response.body, bytes)
    assert_pkcs12_holds(response.body, certificate)
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(response.body, b"wrong password")
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(response.body, None)
    assert backend.snapshot() == before


def test_pkcs12_by_get_with_the_password_header(
    backend_api: ApiClient, backend: Backend, issued: dict[str, dict[str, Any]]
) -> None:
    device = issued["device"]
    before = backend.snapshot()

    response = request(
        backend_api,
        "GET",
        f"/certificates/{device['fqdn']}/bundle?format=pkcs12",
        headers={"X-Bundle-Password": PASSWORD},
    )

    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == PKCS12_TYPE
    assert device["fqdn"] in response.headers["Content-Disposition"]
    assert_pkcs12_holds(response.body, device)
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(response.body, PASSWORD.upper().encode())
    assert backend.snapshot() == before


@pytest.mark.parametrize(
    ("header", "password"),
    [
        (NON_ASCII_PASSWORD, NON_ASCII_PASSWORD),
        (NON_ASCII_PASSWORD.encode().decode("latin-1"), NON_ASCII_PASSWORD),
        ("pässwort".encode("latin-1").decode("latin-1"), "pässwort"),
    ],
    ids=["text", "utf-8-bytes-read-as-latin-1", "latin-1-bytes"],
)
def test_a_non_ascii_password_header_is_read_as_utf_8(
    api: ApiClient, header: str, password: str
) -> None:
    """Servers hand header bytes on as Latin-1 text: UTF-8 bytes (what curl and requests send
    for a non-ASCII value) are read as UTF-8; bytes that are not UTF-8 stay Latin-1."""
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)

    response = request(
        api,
        "GET",
        f"/certificates/{device['fqdn']}/bundle?format=pkcs12",
        headers={"X-Bundle-Password": header},
    )

    assert response.status_code == 200, response.body
    assert_pkcs12_opens(response.body, password, device["fqdn"])


ACCEPT_CASES = binary_accepts(PKCS12_TYPE)


def pkcs12_download(api: ApiClient, accept: str) -> tuple[Any, dict[str, Any]]:
    """A device's PKCS#12 bundle asked for with `accept`: the response and the device."""
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)
    response = request(
        api,
        "GET",
        f"/certificates/{device['fqdn']}/bundle?format=pkcs12",
        headers={"Accept": accept, "X-Bundle-Password": PASSWORD},
    )
    return response, device


@pytest.mark.parametrize("accept", ACCEPT_CASES.values(), ids=ACCEPT_CASES.keys())
def test_pkcs12_arrives_as_bytes_for_curl_requests_and_its_own_type(
    api: ApiClient, accept: str
) -> None:
    """Chalice admits each of these Accept headers and base64-encodes the body for API Gateway,
    which decodes it for them (its side: tests/unit/test_chalice_tf.py)."""
    response, device = pkcs12_download(api, accept)
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == PKCS12_TYPE
    assert isinstance(response.body, bytes)
    assert_pkcs12_holds(response.body, device)


def test_pkcs12_is_refused_to_a_client_that_accepts_only_json(api: ApiClient) -> None:
    response, _ = pkcs12_download(api, "application/json")
    assert PKCS12_TYPE in error_message(response, 400)


# Refusals ------------------------------------------------------------------------------------

REFUSALS: dict[str, tuple[str, str, Any, dict[str, str], int, str]] = {
    # name: (method, path with {device}, body, headers, status, what the message starts with)
    "pkcs12-of-a-ca-by-post": (
        "POST",
        f"/certificates/{CELL1}/bundle",
        {"format": "pkcs12", "password": PASSWORD},
        {},
        403,
        "",
    ),
    "pkcs12-of-a-root-by-get": (
        "GET",
        f"/certificates/{ROOT}/bundle?format=pkcs12",
        None,
        {"X-Bundle-Password": PASSWORD},
        403,
        "",
    ),
    "pkcs12-without-password-by-post": (
        "POST",
        "/certificates/{device}/bundle",
        {"format": "pkcs12"},
        {},
        400,
        "password",
    ),
    "pkcs12-without-password-by-get": (
        "GET",
        "/certificates/{device}/bundle?format=pkcs12",
        None,
        {},
        400,
        "password",
    ),
    "pkcs12-empty-password": (
        "POST",
        "/certificates/{device}/bundle",
        {"format": "pkcs12", "password": ""},
        {},
        400,
        "password",
    ),
    "pkcs12-numeric-password": (
        "POST",
        "/certificates/{device}/bundle",
        {"format": "pkcs12", "password": 1234},
        {},
        400,
        "password",
    ),
    "password-in-the-url": (
        "GET",
        f"/certificates/{{device}}/bundle?format=pkcs12&password={PASSWORD.replace(' ', '+')}",
        None,
        {},
        400,
        "password",
    ),
    "password-in-the-url-even-with-header": (
        "GET",
        "/certificates/{device}/bundle?format=pkcs12&password=x",
        None,
        {"X-Bundle-Password": PASSWORD},
        400,
        "password",
    ),
    "unknown-format-by-get": (
        "GET",
        "/certificates/{device}/bundle?format=jks",
        None,
        {},
        400,
        "format",
    ),
    "unknown-format-by-post": (
        "POST",
        "/certificates/{device}/bundle",
        {"format": "der", "password": PASSWORD},
        {},
        400,
        "format",
    ),
    "unknown-field-by-post": (
        "POST",
        "/certificates/{device}/bundle",
        {"format": "pkcs12", "password": PASSWORD, "iterations": 1},
        {},
        400,
        "iterations",
    ),
    "unknown-parameter-by-get": (
        "GET",
        "/certificates/{device}/bundle?format=pem&include_key=1",
        None,
        {},
        400,
        "include_key",
    ),
    "bundle-of-unknown-certificate": (
        "GET",
        "/certificates/nowhere.example.net/bundle?format=pem",
        None,
        {},
        404,
        "",
    ),
    "private-key-of-a-ca": ("GET", f"/certificates/{CELL1}/private-key", None, {}, 403, ""),
    "private-key-of-a-root": ("GET", f"/certificates/{ROOT}/private-key", None, {}, 403, ""),
    "private-key-of-unknown": (
        "GET",
        f"/certificates/nowhere.{CELL1}/private-key",
        None,
        {},
        404,
        "",
    ),
}


def test_refused_reads_say_why_and_write_nothing(
    backend_api: ApiClient,
    backend: Backend,
    issued: dict[str, dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    for case, (method, path, body, headers, status, field) in REFUSALS.items():
        with subtests.test(case=case):
            before = backend.snapshot()

            response = request(
                backend_api, method, path.format(device=issued["device"]["fqdn"]), body, headers
            )

            message = error_message(response, status)
            assert message.startswith(field), message
            assert "PRIVATE KEY" not in message and PASSWORD not in message
            assert backend.snapshot() == before


# Private keys --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "server"])
def test_private_key_endpoint_returns_the_key_issued_with_the_certificate(
    backend_api: ApiClient, backend: Backend, issued: dict[str, dict[str, Any]], kind: str
) -> None:
    certificate = issued[kind]
    before = backend.snapshot()

    response = backend_api.get(f"/certificates/{certificate['fqdn']}/private-key")

    assert response.status_code == 200, response.body
    assert response.body == {"fqdn": certificate["fqdn"], "private_key": certificate["private_key"]}
    key = serialization.load_pem_private_key(response.body["private_key"].encode(), None)
    leaf = x509.load_pem_x509_certificate(certificate["certificate"].encode())
    assert public_key_der(key.public_key()) == public_key_der(leaf.public_key())
    assert backend.snapshot() == before


def test_no_endpoint_serves_a_ca_key(
    backend_api: ApiClient, issued: dict[str, dict[str, Any]]
) -> None:
    """Across every read a CA has, no PEM private key appears (a forbidden key is not leaked)."""
    for ca in (ROOT, SERVER_CA, CELL1):
        bodies = [
            request(backend_api, "GET", f"/certificates/{ca}").body,
            request(backend_api, "GET", f"/certificates/{ca}/private-key").body,
            request(backend_api, "GET", f"/certificates/{ca}/bundle?format=fullchain").body,
            request(backend_api, "GET", f"/certificates/{ca}/bundle?format=pem").body,
        ]
        for body in bodies:
            text = body.decode() if isinstance(body, bytes) else body
            assert "PRIVATE KEY" not in text
    # Negative control: the same reads of a device do find its key at /private-key.
    device_key = request(
        backend_api, "GET", f"/certificates/{issued['device']['fqdn']}/private-key"
    )
    assert "PRIVATE KEY" in text_of(device_key)

"""Certificates from CSRs: the caller's public key, the server's profile, and nothing else.

A CSR is greedy on purpose here (it asks for CA=true, serverAuth and codeSigning, another common
name and another SAN): the certificate must still carry exactly the device or server profile, with
the CSR's key. Bad CSRs are 400s that name the field and store nothing, on both backends.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.backends import Backend, MotoBackend
from tests.helpers import (
    CELL1,
    DEVICE_CA_PARENT,
    ROOT,
    SERVER_CA,
    ApiClient,
    verify_client,
    verify_server,
)

REQUESTED_NAME = "attacker.example.org"
SERVER_FQDN = f"mqtt.{SERVER_CA}"
SERVER_SANS = [f"broker.{SERVER_CA}", "10.0.0.7"]


def private_key(kind: str) -> CertificateIssuerPrivateKeyTypes:
    if kind == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind.startswith("RSA_"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    curves = {"EC_P256": ec.SECP256R1(), "EC_P384": ec.SECP384R1(), "EC_P521": ec.SECP521R1()}
    return ec.generate_private_key(curves[kind])


def csr_pem(key: CertificateIssuerPrivateKeyTypes) -> str:
    """A CSR asking for far more than any leaf profile gives: CA, code signing, other names."""
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, REQUESTED_NAME)]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(REQUESTED_NAME)]), critical=False)
        .sign(key, algorithm)
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def public_key_der(key: Any) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def der_to_csr_pem(der: bytes) -> str:
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()


def csr_with_flipped_signature() -> str:
    """The last DER byte lies inside the signature BIT STRING: still parses, no longer verifies."""
    der = bytearray(
        x509.load_pem_x509_csr(csr_pem(private_key("EC_P256")).encode()).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-1] ^= 0x01
    return der_to_csr_pem(bytes(der))


def csr_with_swapped_key() -> str:
    """Signed by key A, then A's SubjectPublicKeyInfo replaced by B's (same length on P-256)."""
    signer, other = private_key("EC_P256"), private_key("EC_P256")
    der = x509.load_pem_x509_csr(csr_pem(signer).encode()).public_bytes(serialization.Encoding.DER)
    signer_info, other_info = (
        public_key_der(signer.public_key()),
        public_key_der(other.public_key()),
    )
    assert len(signer_info) == len(other_info) and der.count(signer_info) == 1
    return der_to_csr_pem(der.replace(signer_info, other_info))


def certificate_pem() -> str:
    key = private_key("EC_P256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-a-csr.example.org")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2030, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def load_leaf(issued: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued["certificate"].encode())


def assert_leaf_profile(
    leaf: x509.Certificate, usage: x509.ObjectIdentifier, names: list[x509.GeneralName]
) -> None:
    """CA=false (critical), exactly one EKU, exactly these SANs: none of the CSR's wishes."""
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca is False
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == names
    assert REQUESTED_NAME not in leaf.subject.rfc4514_string()
    key_usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert key_usage.critical
    assert key_usage.value.key_cert_sign is False


def assert_private_key_not_stored(api: ApiClient, fqdn: str) -> None:
    response = api.get(f"/certificates/{fqdn}/private-key")
    assert response.status_code == 404, response.body
    assert "CSR" in response.body["Message"]


# Device and server certificates from CSRs ----------------------------------------------------


def test_device_csr_gets_the_device_profile_with_the_csr_key(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    key = private_key("EC_P256")

    device = backend_api.create("device", parent_fqdn=CELL1, csr=csr_pem(key))

    assert "private_key" not in device
    assert device["key_type"] == "EC_P256"
    leaf = load_leaf(device)
    assert public_key_der(leaf.public_key()) == public_key_der(key.public_key())
    assert_leaf_profile(leaf, ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(device["fqdn"])])
    assert re.fullmatch(rf"{re.escape(device['device_id'])}\.{re.escape(CELL1)}", device["fqdn"])
    common_names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [attribute.value for attribute in common_names] == [device["device_id"]]
    verified = verify_client(device, hierarchy[ROOT]["certificate"])
    assert [certificate.subject for certificate in verified.chain] == [
        load_leaf(issued).subject
        for issued in (device, hierarchy[CELL1], hierarchy[DEVICE_CA_PARENT], hierarchy[ROOT])
    ]
    assert_private_key_not_stored(backend_api, device["fqdn"])
    stored = backend_api.get(f"/certificates/{device['fqdn']}")
    assert stored.status_code == 200
    assert stored.body["certificate"] == device["certificate"]


def test_server_csr_gets_the_server_profile_with_the_csr_key(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    key = private_key("EC_P256")

    server = backend_api.create("server", fqdn=SERVER_FQDN, sans=SERVER_SANS, csr=csr_pem(key))

    assert "private_key" not in server
    assert server["acm_certificate_arn"] is None  # ACM needs the private key, which we never saw
    leaf = load_leaf(server)
    assert public_key_der(leaf.public_key()) == public_key_der(key.public_key())
    assert_leaf_profile(
        leaf,
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.DNSName(SERVER_FQDN),
            x509.DNSName(SERVER_SANS[0]),
            x509.IPAddress(ipaddress.ip_address(SERVER_SANS[1])),
        ],
    )
    common_names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [attribute.value for attribute in common_names] == [SERVER_FQDN]
    verify_server(server, hierarchy[ROOT]["certificate"], SERVER_FQDN)
    verify_server(server, hierarchy[ROOT]["certificate"], SERVER_SANS[0])
    with pytest.raises(x509.verification.VerificationError):  # the CSR's own name: never granted
        verify_server(server, hierarchy[ROOT]["certificate"], REQUESTED_NAME)
    assert_private_key_not_stored(backend_api, SERVER_FQDN)
    if isinstance(backend, MotoBackend):
        assert backend.acm.list_certificates()["CertificateSummaryList"] == []


@pytest.mark.parametrize("kind", ["EC_P384", "RSA_2048", "ED25519"])
def test_device_csr_key_types_are_recorded(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]], kind: str
) -> None:
    key = private_key(kind)

    device = backend_api.create("device", parent_fqdn=CELL1, csr=csr_pem(key))

    assert device["key_type"] == kind
    leaf = load_leaf(device)
    assert public_key_der(leaf.public_key()) == public_key_der(key.public_key())
    assert_leaf_profile(leaf, ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(device["fqdn"])])
    verify_client(device, hierarchy[ROOT]["certificate"])
    listed = backend_api.get(f"/certificates?parent={CELL1}")
    assert [item["key_type"] for item in listed.body["items"]] == [kind]
    assert backend_api.get(f"/certificates/{device['fqdn']}").body["key_type"] == kind


@pytest.mark.parametrize("kind", ["EC_P384", "RSA_2048"])
def test_server_csr_key_types_are_recorded(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]], kind: str
) -> None:
    key = private_key(kind)

    server = backend_api.create("server", fqdn=SERVER_FQDN, csr=csr_pem(key))

    assert server["key_type"] == kind
    assert public_key_der(load_leaf(server).public_key()) == public_key_der(key.public_key())
    verify_server(server, hierarchy[ROOT]["certificate"], SERVER_FQDN)


# Bad CSRs ------------------------------------------------------------------------------------

BodyFactory = Callable[[], dict[str, Any]]


@functools.cache
def good_csr() -> str:
    return csr_pem(private_key("EC_P256"))


BAD_CSR_CASES: dict[str, tuple[str, Callable[[], dict[str, Any]], str, str]] = {
    # name: (route, body, field named first in the message, text the message contains)
    "flipped-signature": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": csr_with_flipped_signature()},
        "csr",
        "signature",
    ),
    "swapped-public-key": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": csr_with_swapped_key()},
        "csr",
        "signature",
    ),
    "rsa-1024": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": csr_pem(private_key("RSA_1024"))},
        "csr",
        "RSA-1024",
    ),
    "ec-p521": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": csr_pem(private_key("EC_P521"))},
        "csr",
        "secp521r1",
    ),
    "garbage-pem": (
        "device",
        lambda: {
            "parent_fqdn": CELL1,
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n"
            "-----END CERTIFICATE REQUEST-----\n",
        },
        "csr",
        "",
    ),
    "not-pem-at-all": ("device", lambda: {"parent_fqdn": CELL1, "csr": "hello"}, "csr", ""),
    "certificate-instead-of-csr": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": certificate_pem()},
        "csr",
        "",
    ),
    "non-string": ("device", lambda: {"parent_fqdn": CELL1, "csr": 42}, "csr", ""),
    "list-instead-of-string": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": [good_csr()]},
        "csr",
        "",
    ),
    "csr-with-key-type": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": good_csr(), "key_type": "EC_P256"},
        "key_type",
        "csr",
    ),
    "server-csr-with-key-type": (
        "server",
        lambda: {"fqdn": SERVER_FQDN, "csr": good_csr(), "key_type": "RSA_2048"},
        "key_type",
        "csr",
    ),
    "csr-with-count": (
        "device",
        lambda: {"parent_fqdn": CELL1, "csr": good_csr(), "count": 2},
        "count",
        "csr",
    ),
    "ed25519-for-server": (
        "server",
        lambda: {"fqdn": SERVER_FQDN, "csr": csr_pem(private_key("ED25519"))},
        "csr",
        "Ed25519",
    ),
    "server-flipped-signature": (
        "server",
        lambda: {"fqdn": SERVER_FQDN, "csr": csr_with_flipped_signature()},
        "csr",
        "signature",
    ),
    "csr-for-root": ("root", lambda: {"fqdn": "other.org", "csr": good_csr()}, "csr", "unknown"),
}


def test_bad_csr_is_a_400_naming_the_field_and_writes_nothing(
    backend_api: ApiClient,
    backend: Backend,
    hierarchy: dict[str, dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    """One hierarchy per backend, one subtest per case (a moto setup costs ~0.5 s)."""
    for case, (route, body, field, contains) in BAD_CSR_CASES.items():
        with subtests.test(case=case):
            request_body = body()
            before = backend.snapshot()

            response = backend_api.post(f"/certificates/{route}", request_body)

            assert response.status_code == 400, response.body
            assert response.body["Code"] == "BadRequestError"
            message = response.body["Message"]
            assert re.match(rf"{re.escape(field)}(?![\w\[])", message), message
            assert contains in message, message
            assert "Traceback" not in message
            assert backend.snapshot() == before


def test_negative_controls_of_the_bad_csr_builders() -> None:
    """The corrupted CSRs still parse (so the service, not the parser, must refuse them)."""
    for pem in (csr_with_flipped_signature(), csr_with_swapped_key()):
        assert not x509.load_pem_x509_csr(pem.encode()).is_signature_valid
    assert x509.load_pem_x509_csr(good_csr().encode()).is_signature_valid

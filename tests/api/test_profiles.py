"""Every certificate profile, extension by extension and with its criticality, for every key type.

The certificates are issued through the HTTP API (docs/api.md is the contract). RSA-4096
keys are slow to generate, so each key type gets one hierarchy, built once per module and shared
by the read-only checks below: root example.com (with C/ST/O), servers.example.com (path_length
default 0), devices.example.com (path_length 1) with the nested cell1.devices.example.com (default
0), the server mqtt.servers.example.com and one device under cell1.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from chalicelib import wiring
from tests.helpers import ApiClient

KEY_TYPES = [
    "EC_P256",
    "EC_P384",
    "RSA_2048",
    "RSA_3072",
    pytest.param("RSA_4096", marks=pytest.mark.slow),  # six RSA-4096 keys: seconds
]
BACKDATE = timedelta(minutes=5)

ROOT = "example.com"
SERVER_CA = "servers.example.com"
DEVICE_CA = "devices.example.com"
CELL = "cell1.devices.example.com"
SERVER = "mqtt.servers.example.com"
DEVICE = "device"
"""Key of the device response in `Hierarchy.responses` (its FQDN is only known once issued)."""

EXTRA_SANS = ["localhost", "127.0.0.1", "::1"]

CA_EXTENSIONS = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
}
LEAF_EXTENSIONS = CA_EXTENSIONS | {
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
}


@dataclass(frozen=True)
class Hierarchy:
    key_type: str
    responses: dict[str, dict[str, Any]]
    started: datetime
    finished: datetime

    def certificate(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.responses[name]["certificate"].encode())

    @property
    def is_rsa(self) -> bool:
        return self.key_type.startswith("RSA_")


def _issue_hierarchy(api: ApiClient, key_type: str) -> dict[str, dict[str, Any]]:
    return {
        ROOT: api.create(
            "root",
            fqdn=ROOT,
            key_type=key_type,
            country="de",
            state="Bayern",
            organization="Example IoT GmbH",
        ),
        SERVER_CA: api.create("intermediate", fqdn=SERVER_CA, key_type=key_type),
        DEVICE_CA: api.create("intermediate", fqdn=DEVICE_CA, key_type=key_type, path_length=1),
        CELL: api.create("intermediate", fqdn=CELL, key_type=key_type),
        SERVER: api.create("server", fqdn=SERVER, key_type=key_type, sans=EXTRA_SANS),
        DEVICE: api.create(
            "device", parent_fqdn=CELL, key_type=key_type, organization="Example Devices"
        ),
    }


@pytest.fixture(scope="module", params=KEY_TYPES)
def issued(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hierarchy]:
    """One hierarchy per key type, issued once for the module on its own fresh local store.

    The `api` fixture is per test; sharing one issuance per key type keeps the RSA-4096 key count
    at six. The environment is set exactly as the `certstore` fixture sets it and restored at once:
    the tests only read the responses.
    """
    from app import app

    key_type: str = request.param
    store: Path = tmp_path_factory.mktemp(f"certstore-{key_type}")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("CERTSTORE_DIR", str(store))
        monkeypatch.setenv("BACKEND", "local")
        monkeypatch.delenv("CA_KEY_PASSPHRASE", raising=False)
        wiring.reset()
        try:
            with Client(app, stage_name="test") as client:
                started = datetime.now(UTC)
                responses = _issue_hierarchy(ApiClient(client), key_type)
                finished = datetime.now(UTC)
        finally:
            wiring.reset()
    yield Hierarchy(key_type, responses, started, finished)


# Assertion helpers, in the manner of trustme's tests --------------------------------------------


def extension(certificate: x509.Certificate, kind: type[Any]) -> x509.Extension[Any]:
    return certificate.extensions.get_extension_for_class(kind)


def assert_extension_set(
    certificate: x509.Certificate, expected: set[x509.ObjectIdentifier]
) -> None:
    oids = [ext.oid for ext in certificate.extensions]
    assert sorted(oid.dotted_string for oid in oids) == sorted(o.dotted_string for o in expected)


def assert_key_usage(
    certificate: x509.Certificate,
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> None:
    """All nine KeyUsage flags: the seven plain ones compared, the two *_only ones undefined.

    encipher_only and decipher_only are only meaningful with keyAgreement; cryptography raises
    ValueError when they are read without it, which is how we know both are absent.
    """
    ext = extension(certificate, x509.KeyUsage)
    assert ext.critical is True
    usage: x509.KeyUsage = ext.value
    assert {
        "digital_signature": usage.digital_signature,
        "content_commitment": usage.content_commitment,
        "key_encipherment": usage.key_encipherment,
        "data_encipherment": usage.data_encipherment,
        "key_agreement": usage.key_agreement,
        "key_cert_sign": usage.key_cert_sign,
        "crl_sign": usage.crl_sign,
    } == {
        "digital_signature": digital_signature,
        "content_commitment": False,
        "key_encipherment": key_encipherment,
        "data_encipherment": False,
        "key_agreement": False,
        "key_cert_sign": key_cert_sign,
        "crl_sign": crl_sign,
    }
    with pytest.raises(ValueError, match="encipher_only"):
        _ = usage.encipher_only
    with pytest.raises(ValueError, match="decipher_only"):
        _ = usage.decipher_only


def assert_subject_key_identifier(certificate: x509.Certificate) -> bytes:
    ext = extension(certificate, x509.SubjectKeyIdentifier)
    assert ext.critical is False
    expected = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key())
    assert ext.value == expected
    return ext.value.digest


def assert_issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> None:
    """Issuer name, AKI = the issuer's SKI (non-critical, key id only) and a valid signature."""
    assert certificate.issuer == issuer.subject
    aki = extension(certificate, x509.AuthorityKeyIdentifier)
    assert aki.critical is False
    issuer_ski = extension(issuer, x509.SubjectKeyIdentifier).value.digest
    assert aki.value.key_identifier == issuer_ski
    assert aki.value.authority_cert_issuer is None
    assert aki.value.authority_cert_serial_number is None
    certificate.verify_directly_issued_by(issuer)


def assert_is_ca(certificate: x509.Certificate, path_length: int | None) -> None:
    constraints = extension(certificate, x509.BasicConstraints)
    assert constraints.critical is True
    assert constraints.value.ca is True
    assert constraints.value.path_length == path_length
    assert_key_usage(certificate, key_cert_sign=True, crl_sign=True)
    assert_subject_key_identifier(certificate)


def assert_is_leaf(
    certificate: x509.Certificate, is_rsa: bool, usage: x509.ObjectIdentifier
) -> None:
    assert_extension_set(certificate, LEAF_EXTENSIONS)
    constraints = extension(certificate, x509.BasicConstraints)
    assert constraints.critical is True
    assert constraints.value.ca is False
    assert constraints.value.path_length is None
    assert_key_usage(certificate, digital_signature=True, key_encipherment=is_rsa)
    extended = extension(certificate, x509.ExtendedKeyUsage)
    assert extended.critical is False
    assert list(extended.value) == [usage]
    assert extension(certificate, x509.SubjectAlternativeName).critical is False
    assert_subject_key_identifier(certificate)


def common_names(certificate: x509.Certificate) -> list[str]:
    return [
        str(attribute.value)
        for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ]


def subject_details(certificate: x509.Certificate) -> dict[str, list[str]]:
    """The optional subject attributes actually present (absent ones are empty lists)."""
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "O": NameOID.ORGANIZATION_NAME,
    }
    return {
        label: [str(a.value) for a in certificate.subject.get_attributes_for_oid(oid)]
        for label, oid in oids.items()
    }


def public_der(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Profiles ---------------------------------------------------------------------------------------


def test_root_profile(issued: Hierarchy) -> None:
    root = issued.certificate(ROOT)
    assert root.version is x509.Version.v3
    assert_extension_set(root, CA_EXTENSIONS)
    assert_is_ca(root, path_length=None)
    assert common_names(root) == [ROOT]
    assert root.issuer == root.subject
    root.verify_directly_issued_by(root)
    with pytest.raises(x509.ExtensionNotFound):
        extension(root, x509.AuthorityKeyIdentifier)
    assert issued.responses[ROOT]["type"] == "Root"
    assert issued.responses[ROOT]["chain"] == ""


def test_intermediate_profile_default_path_length_zero(issued: Hierarchy) -> None:
    intermediate = issued.certificate(SERVER_CA)
    assert_extension_set(intermediate, CA_EXTENSIONS | {ExtensionOID.AUTHORITY_KEY_IDENTIFIER})
    assert_is_ca(intermediate, path_length=0)
    assert common_names(intermediate) == [SERVER_CA]
    assert_issued_by(intermediate, issued.certificate(ROOT))
    assert intermediate.issuer != intermediate.subject


def test_intermediate_profile_with_path_length_one_and_nested_below(issued: Hierarchy) -> None:
    parent = issued.certificate(DEVICE_CA)
    nested = issued.certificate(CELL)
    assert_is_ca(parent, path_length=1)
    assert_issued_by(parent, issued.certificate(ROOT))
    assert_extension_set(nested, CA_EXTENSIONS | {ExtensionOID.AUTHORITY_KEY_IDENTIFIER})
    assert_is_ca(nested, path_length=0)
    assert common_names(nested) == [CELL]
    assert_issued_by(nested, parent)


def test_server_profile(issued: Hierarchy) -> None:
    server = issued.certificate(SERVER)
    assert_is_leaf(server, issued.is_rsa, ExtendedKeyUsageOID.SERVER_AUTH)
    assert common_names(server) == [SERVER]
    names = extension(server, x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [SERVER, "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert len(names) == 4
    assert_issued_by(server, issued.certificate(SERVER_CA))


def test_device_profile(issued: Hierarchy) -> None:
    response = issued.responses[DEVICE]
    device = issued.certificate(DEVICE)
    device_id = response["device_id"]
    assert uuid.UUID(device_id).version == 4
    assert str(uuid.UUID(device_id)) == device_id
    assert response["fqdn"] == f"{device_id}.{CELL}"
    assert_is_leaf(device, issued.is_rsa, ExtendedKeyUsageOID.CLIENT_AUTH)
    assert common_names(device) == [device_id]
    names = extension(device, x509.SubjectAlternativeName).value
    assert list(names) == [x509.DNSName(f"{device_id}.{CELL}")]
    assert_issued_by(device, issued.certificate(CELL))


# Common fields ----------------------------------------------------------------------------------


def test_serials_are_positive_fit_twenty_bytes_and_match_the_response(
    issued: Hierarchy,
) -> None:
    serials = set()
    for name, response in issued.responses.items():
        serial = issued.certificate(name).serial_number
        assert serial > 0, name
        # DER adds a leading zero byte when the top bit is set: 159 bits is the 20-byte limit.
        assert serial.bit_length() <= 159, name
        assert int(response["serial"], 16) == serial, name
        serials.add(serial)
    assert len(serials) == len(issued.responses)


def test_pem_and_fingerprint_are_what_cryptography_makes_of_the_certificate(
    issued: Hierarchy,
) -> None:
    for name, response in issued.responses.items():
        certificate = issued.certificate(name)
        pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
        assert response["certificate"] == pem, name
        assert response["fingerprint_sha256"] == certificate.fingerprint(hashes.SHA256()).hex()


def test_signature_hash_is_sha384_for_p384_issuers_else_sha256(issued: Hierarchy) -> None:
    expected = hashes.SHA384 if issued.key_type == "EC_P384" else hashes.SHA256
    for name in issued.responses:
        algorithm = issued.certificate(name).signature_hash_algorithm
        assert isinstance(algorithm, expected), (name, algorithm)


def test_validity_starts_five_minutes_back_and_ends_within_the_issuer(
    issued: Hierarchy,
) -> None:
    issuers = {
        ROOT: ROOT,
        SERVER_CA: ROOT,
        DEVICE_CA: ROOT,
        CELL: DEVICE_CA,
        SERVER: SERVER_CA,
        DEVICE: CELL,
    }
    default_days = {ROOT: 3650, SERVER_CA: 1825, DEVICE_CA: 1825, CELL: 1825}
    default_days |= {SERVER: 397, DEVICE: 365}
    earliest = issued.started.replace(microsecond=0) - BACKDATE
    latest = issued.finished - BACKDATE
    for name, issuer_name in issuers.items():
        certificate = issued.certificate(name)
        not_before = certificate.not_valid_before_utc
        not_after = certificate.not_valid_after_utc
        assert earliest <= not_before <= latest, name
        issuer_not_after = issued.certificate(issuer_name).not_valid_after_utc
        assert not_after <= issuer_not_after, name
        # The default lifetime counts from the issuing moment (not_before + BACKDATE) and is cut
        # to the issuer's end: cell1 (1825 days) is issued a moment after its 1825-day parent.
        issued_at = not_before + BACKDATE
        expected = min(issued_at + timedelta(days=default_days[name]), issuer_not_after)
        assert not_after == expected, name
    root = issued.certificate(ROOT)
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert lifetime == timedelta(days=3650) + BACKDATE


def test_subject_carries_country_state_organization_only_when_given(
    issued: Hierarchy,
) -> None:
    root = issued.certificate(ROOT)
    assert subject_details(root) == {"C": ["DE"], "ST": ["Bayern"], "O": ["Example IoT GmbH"]}
    device = issued.certificate(DEVICE)
    assert subject_details(device) == {"C": [], "ST": [], "O": ["Example Devices"]}
    for name in (SERVER_CA, DEVICE_CA, CELL, SERVER):
        certificate = issued.certificate(name)
        assert subject_details(certificate) == {"C": [], "ST": [], "O": []}, name
        assert len(certificate.subject) == 1, name


def test_public_key_type_and_size_match_key_type(issued: Hierarchy) -> None:
    for name, response in issued.responses.items():
        assert response["key_type"] == issued.key_type
        public_key = issued.certificate(name).public_key()
        family, size = issued.key_type.split("_")
        if family == "EC":
            assert isinstance(public_key, ec.EllipticCurvePublicKey), name
            assert public_key.curve.name == f"secp{size[1:]}r1", name
        else:
            assert isinstance(public_key, rsa.RSAPublicKey), name
            assert public_key.key_size == int(size), name
            assert public_key.public_numbers().e == 65537, name


def test_leaf_private_key_matches_its_certificate(issued: Hierarchy) -> None:
    keys = {
        name: public_der(
            serialization.load_pem_private_key(
                issued.responses[name]["private_key"].encode(), password=None
            ).public_key()
        )
        for name in (SERVER, DEVICE)
    }
    certificates = {name: public_der(issued.certificate(name).public_key()) for name in keys}
    assert keys[SERVER] == certificates[SERVER]
    assert keys[DEVICE] == certificates[DEVICE]
    assert keys[SERVER] != keys[DEVICE]


def test_ca_responses_carry_no_private_key(issued: Hierarchy) -> None:
    for name in (ROOT, SERVER_CA, DEVICE_CA, CELL):
        assert "private_key" not in issued.responses[name], name
        assert "PRIVATE KEY" not in str(issued.responses[name]), name


# Mixed key types (cheap EC keys, one store per test) -------------------------------------------


def test_signature_hash_follows_the_issuer_key_not_the_subject_key(api: ApiClient) -> None:
    p384_root = api.create("root", fqdn="p384.example", key_type="EC_P384")
    p256_under_p384 = api.create("intermediate", fqdn="p256.p384.example", key_type="EC_P256")
    p256_root = api.create("root", fqdn="p256.example", key_type="EC_P256")
    p384_under_p256 = api.create("intermediate", fqdn="p384.p256.example", key_type="EC_P384")
    leaf_of_p384 = api.create("server", fqdn="mqtt.p384.p256.example", key_type="EC_P256")

    def hash_of(response: dict[str, Any]) -> hashes.HashAlgorithm | None:
        pem = response["certificate"].encode()
        return x509.load_pem_x509_certificate(pem).signature_hash_algorithm

    assert isinstance(hash_of(p384_root), hashes.SHA384)
    assert isinstance(hash_of(p256_under_p384), hashes.SHA384)
    assert isinstance(hash_of(p256_root), hashes.SHA256)
    assert isinstance(hash_of(p384_under_p256), hashes.SHA256)
    assert isinstance(hash_of(leaf_of_p384), hashes.SHA384)


def test_default_validity_is_cut_to_a_short_lived_issuer(api: ApiClient) -> None:
    root = api.create("root", fqdn="short.example", validity_days=30)
    intermediate = api.create("intermediate", fqdn="ca.short.example")
    root_not_after = x509.load_pem_x509_certificate(
        root["certificate"].encode()
    ).not_valid_after_utc
    not_after = x509.load_pem_x509_certificate(
        intermediate["certificate"].encode()
    ).not_valid_after_utc
    assert not_after <= root_not_after
    assert not_after > datetime.now(UTC) + timedelta(days=29)


def test_partial_subject_details_through_the_api(api: ApiClient) -> None:
    root = api.create("root", fqdn="plain.example", organization="Only Org")
    certificate = x509.load_pem_x509_certificate(root["certificate"].encode())
    assert subject_details(certificate) == {"C": [], "ST": [], "O": ["Only Org"]}
    assert common_names(certificate) == ["plain.example"]
    device = api.create("device", parent_fqdn="plain.example", country="fr")
    device_certificate = x509.load_pem_x509_certificate(device["certificate"].encode())
    assert subject_details(device_certificate) == {"C": ["FR"], "ST": [], "O": []}

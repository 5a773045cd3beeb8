"""chalicelib.pki_documents on its own: CSR checks, CRLs and PKCS#12 bundles, without the service.

Certificate authorities are built with chalicelib.pki directly. Every positive check has a negative
control: a CSR whose signature no longer verifies, a CRL checked with another CA's key, a bundle
opened with the wrong password.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chalicelib.kinds import CA_AND_SERVER_KEY_TYPES
from chalicelib.model import KeyType, SubjectDetails
from chalicelib.pki import (
    SigningAuthority,
    Validity,
    build_subject,
    certificate_to_pem,
    device_profile,
    generate_private_key,
    intermediate_profile,
    root_profile,
    sign_certificate,
)
from chalicelib.pki_documents import (
    CsrError,
    build_crl,
    crl_bytes,
    pkcs12_bundle,
    public_key_from_csr,
)

ALL_KEY_TYPES = frozenset(KeyType)
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
"""A fixed instant (whole seconds, as X.509 times are) so dates compare exactly."""
NOT_A_CSR = "is not a PEM certificate signing request"


@functools.cache
def private_key(kind: str, role: str = "leaf") -> CertificateIssuerPrivateKeyTypes:
    """One key per kind and role for the whole module: RSA key generation dominates the runtime."""
    if kind in {key_type.value for key_type in KeyType}:
        return generate_private_key(KeyType(kind))
    if kind.startswith("RSA-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[4:]))
    curves: dict[str, ec.EllipticCurve] = {"P-521": ec.SECP521R1(), "secp256k1": ec.SECP256K1()}
    return ec.generate_private_key(curves[kind])


def csr_pem(
    key: CertificateIssuerPrivateKeyTypes,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-0001")])
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    request = builder.sign(key, algorithm)
    return request.public_bytes(serialization.Encoding.PEM).decode("ascii")


def public_der(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# public_key_from_csr ----------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", list(KeyType), ids=str)
def test_csr_of_every_supported_key_type_gives_its_key_and_type(key_type: KeyType) -> None:
    key = private_key(key_type.value)

    public_key, found_type = public_key_from_csr(csr_pem(key), ALL_KEY_TYPES)

    assert found_type is key_type
    assert public_der(public_key) == public_der(key.public_key())


def test_csr_asking_for_a_ca_with_usages_is_accepted_for_its_key_only() -> None:
    """Profiles are the server's: requested extensions neither fail the CSR nor come back."""
    key = private_key(KeyType.EC_P256.value)
    greedy = csr_pem(
        key,
        [
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING]
                ),
                False,
            ),
        ],
    )
    assert len(x509.load_pem_x509_csr(greedy.encode()).extensions) == 2

    result = public_key_from_csr(greedy, ALL_KEY_TYPES)

    assert len(result) == 2
    public_key, key_type = result
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_der(public_key) == public_der(key.public_key())
    assert key_type is KeyType.EC_P256


def _with_corrupted_signature(pem: str) -> str:
    """The same CSR with the last byte of its DER, inside the signature BIT STRING, flipped."""
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode("ascii")
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519], ids=str)
def test_csr_with_a_corrupted_signature_is_refused(key_type: KeyType) -> None:
    pem = csr_pem(private_key(key_type.value))
    corrupted = _with_corrupted_signature(pem)
    assert corrupted != pem
    # The corrupted request still parses: only its signature is wrong.
    assert not x509.load_pem_x509_csr(corrupted.encode()).is_signature_valid

    with pytest.raises(CsrError, match="signature"):
        public_key_from_csr(corrupted, ALL_KEY_TYPES)


@pytest.mark.parametrize(
    ("kind", "described"),
    [
        ("RSA-1024", "RSA-1024"),
        ("RSA-2560", "RSA-2560"),
        ("P-521", "EC secp521r1"),
        ("secp256k1", "EC secp256k1"),
    ],
)
def test_csr_with_an_unsupported_key_names_it_and_the_allowed_types(
    kind: str, described: str
) -> None:
    pem = csr_pem(private_key(kind))
    assert x509.load_pem_x509_csr(pem.encode()).is_signature_valid

    with pytest.raises(CsrError) as raised:
        public_key_from_csr(pem, ALL_KEY_TYPES)

    message = str(raised.value)
    assert f"key {described} is not allowed" in message
    assert message.endswith("allowed: " + ", ".join(sorted(k.value for k in KeyType)))


def test_ed25519_csr_is_refused_where_ed25519_is_not_allowed() -> None:
    pem = csr_pem(private_key(KeyType.ED25519.value))
    assert public_key_from_csr(pem, ALL_KEY_TYPES)[1] is KeyType.ED25519  # control

    with pytest.raises(CsrError) as raised:
        public_key_from_csr(pem, CA_AND_SERVER_KEY_TYPES)

    message = str(raised.value)
    assert "Ed25519" in message
    allowed = message.split("allowed: ", 1)[1]
    assert allowed.split(", ") == sorted(k.value for k in CA_AND_SERVER_KEY_TYPES)
    assert KeyType.ED25519.value not in allowed


def test_supported_key_type_outside_the_allowed_set_is_refused() -> None:
    pem = csr_pem(private_key(KeyType.RSA_2048.value))

    with pytest.raises(CsrError, match=r"key RSA-2048 is not allowed here; allowed: EC_P256$"):
        public_key_from_csr(pem, frozenset({KeyType.EC_P256}))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("", id="empty"),
        pytest.param(
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIBäöü\n-----END CERTIFICATE REQUEST-----\n",
            id="non-ascii-body",
        ),
        pytest.param("Gerät \u00e9\U0001f512", id="non-ascii"),
        pytest.param("\ud800", id="lone-surrogate"),
    ],
)
def test_text_that_is_not_a_pem_csr_is_refused(text: str) -> None:
    with pytest.raises(CsrError, match=NOT_A_CSR):
        public_key_from_csr(text, ALL_KEY_TYPES)


def test_certificate_pem_is_not_a_csr() -> None:
    key = private_key(KeyType.EC_P256.value)
    certificate = sign_certificate(
        root_profile(),
        build_subject("example.com", SubjectDetails()),
        key.public_key(),
        Validity(NOW, NOW + timedelta(days=1)),
        None,
        key,
    )
    pem = certificate_to_pem(certificate)
    assert x509.load_pem_x509_certificate(pem.encode()) == certificate  # a valid PEM, of a cert

    with pytest.raises(CsrError, match=NOT_A_CSR):
        public_key_from_csr(pem, ALL_KEY_TYPES)


# build_crl --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    """A root and an intermediate under it, which signs the CRL and its devices."""

    root: x509.Certificate
    signing: SigningAuthority


def _authority(key_type: KeyType, keys: str = "") -> Authority:
    """The same names whatever `keys` says; another `keys` gives the same CAs with other keys."""
    validity = Validity(NOW - timedelta(days=1), NOW + timedelta(days=365))
    root_key = private_key(key_type.value, f"root{keys}")
    root = sign_certificate(
        root_profile(),
        build_subject("example.com", SubjectDetails(organization="Example IoT")),
        root_key.public_key(),
        validity,
        None,
        root_key,
    )
    cell_key = private_key(key_type.value, f"cell{keys}")
    cell = sign_certificate(
        intermediate_profile(0),
        build_subject("cell1.devices.example.com", SubjectDetails()),
        cell_key.public_key(),
        validity,
        SigningAuthority(root, root_key),
    )
    return Authority(root, SigningAuthority(cell, cell_key))


def _device(authority: Authority, number: int) -> x509.Certificate:
    key = private_key(KeyType.EC_P256.value)
    fqdn = f"device-{number}.cell1.devices.example.com"
    return sign_certificate(
        device_profile(KeyType.EC_P256, fqdn),
        build_subject(f"device-{number}", SubjectDetails()),
        key.public_key(),
        Validity(NOW - timedelta(days=1), NOW + timedelta(days=30)),
        authority.signing,
    )


CRL_AUTHORITIES = [
    pytest.param(KeyType.EC_P256, hashes.SHA256, id="EC_P256"),
    pytest.param(KeyType.EC_P384, hashes.SHA384, id="EC_P384"),
    pytest.param(KeyType.RSA_2048, hashes.SHA256, id="RSA_2048"),
]
REASONS = [
    x509.ReasonFlags.key_compromise,
    x509.ReasonFlags.unspecified,
    x509.ReasonFlags.superseded,
    x509.ReasonFlags.cessation_of_operation,
]


@pytest.mark.parametrize(("key_type", "hash_type"), CRL_AUTHORITIES)
def test_crl_lists_every_entry_in_order_and_is_signed_by_the_authority(
    key_type: KeyType, hash_type: type[hashes.HashAlgorithm]
) -> None:
    authority = _authority(key_type)
    devices = [_device(authority, number) for number in range(len(REASONS))]
    # Given newest first and with serials out of order, so the order kept is the one given.
    entries = [
        (device.serial_number, NOW - timedelta(hours=10 - index), reason)
        for index, (device, reason) in enumerate(zip(devices, REASONS, strict=True))
    ][::-1]
    validity = Validity(NOW, NOW + timedelta(days=7))

    crl = build_crl(authority.signing, entries, validity, crl_number=1741944413)

    assert [(e.serial_number, e.revocation_date_utc) for e in crl] == [
        (serial, revoked_at) for serial, revoked_at, _ in entries
    ]
    for serial, _, reason in entries:
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        assert entry is not None
        if reason is x509.ReasonFlags.unspecified:
            assert len(entry.extensions) == 0  # RFC 5280: omitted rather than "unspecified"
        else:
            extension = entry.extensions.get_extension_for_class(x509.CRLReason)
            assert extension.value.reason is reason
            assert extension.critical is False
            assert len(entry.extensions) == 1
    assert (
        crl.get_revoked_certificate_by_serial_number(authority.signing.certificate.serial_number)
        is None
    )

    assert_crl_metadata(crl, authority, validity, 1741944413)
    assert isinstance(crl.signature_hash_algorithm, hash_type)
    assert crl.is_signature_valid(authority.signing.certificate.public_key())


def assert_crl_metadata(
    crl: x509.CertificateRevocationList, authority: Authority, validity: Validity, number: int
) -> None:
    ca = authority.signing.certificate
    assert crl.issuer == ca.subject
    assert crl.last_update_utc == validity.not_before
    assert crl.next_update_utc == validity.not_after
    crl_number = crl.extensions.get_extension_for_class(x509.CRLNumber)
    assert crl_number.value.crl_number == number
    assert crl_number.critical is False
    key_identifier = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert key_identifier.value.key_identifier == ski.digest
    assert key_identifier.value.authority_cert_issuer is None
    assert key_identifier.critical is False
    assert len(crl.extensions) == 2


@pytest.mark.parametrize(("key_type", "hash_type"), CRL_AUTHORITIES)
def test_empty_crl_is_valid(key_type: KeyType, hash_type: type[hashes.HashAlgorithm]) -> None:
    authority = _authority(key_type)
    validity = Validity(NOW, NOW + timedelta(days=7))

    crl = build_crl(authority.signing, [], validity, crl_number=7)

    assert len(crl) == 0
    assert_crl_metadata(crl, authority, validity, 7)
    assert isinstance(crl.signature_hash_algorithm, hash_type)
    assert crl.is_signature_valid(authority.signing.certificate.public_key())


def test_crl_signature_does_not_verify_with_another_authority() -> None:
    """Negative control: the parent's key; a CA of the same name and key type with its own key."""
    authority = _authority(KeyType.EC_P256)
    crl = build_crl(authority.signing, [], Validity(NOW, NOW + timedelta(days=7)), crl_number=1)

    assert crl.is_signature_valid(authority.signing.certificate.public_key())
    assert not crl.is_signature_valid(authority.root.public_key())
    other = _authority(KeyType.EC_P256, keys="-other")
    assert other.signing.certificate.subject == authority.signing.certificate.subject
    assert not crl.is_signature_valid(other.signing.certificate.public_key())


@pytest.mark.parametrize("crl_format", ["der", "pem"])
def test_crl_bytes_round_trip(crl_format: str) -> None:
    authority = _authority(KeyType.EC_P256)
    device = _device(authority, 1)
    entries = [(device.serial_number, NOW, x509.ReasonFlags.key_compromise)]
    crl = build_crl(authority.signing, entries, Validity(NOW, NOW + timedelta(days=7)), 3)

    content = crl_bytes(crl, crl_format)

    loader = x509.load_der_x509_crl if crl_format == "der" else x509.load_pem_x509_crl
    assert content.startswith(b"-----BEGIN X509 CRL-----") is (crl_format == "pem")
    assert loader(content) == crl


# pkcs12_bundle ----------------------------------------------------------------------------------

PASSWORD = b"correct horse battery staple"


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048, KeyType.ED25519], ids=str)
def test_pkcs12_bundle_holds_key_certificate_chain_and_name(key_type: KeyType) -> None:
    authority = _authority(KeyType.EC_P256)
    key = private_key(key_type.value)
    fqdn = "device-7.cell1.devices.example.com"
    certificate = sign_certificate(
        device_profile(key_type, fqdn),
        build_subject("device-7", SubjectDetails()),
        key.public_key(),
        Validity(NOW - timedelta(days=1), NOW + timedelta(days=30)),
        authority.signing,
    )
    chain = [authority.signing.certificate, authority.root]

    bundle = pkcs12_bundle(fqdn, key, certificate, chain, PASSWORD)

    loaded = pkcs12.load_pkcs12(bundle, PASSWORD)
    assert loaded.key is not None
    assert public_der(loaded.key.public_key()) == public_der(key.public_key())
    assert loaded.cert is not None
    assert loaded.cert.certificate == certificate
    assert loaded.cert.friendly_name == fqdn.encode()
    assert [extra.certificate for extra in loaded.additional_certs] == chain


def test_pkcs12_bundle_does_not_open_with_a_wrong_or_missing_password() -> None:
    authority = _authority(KeyType.EC_P256)
    bundle = pkcs12_bundle(
        "cell1.devices.example.com",
        authority.signing.private_key,
        authority.signing.certificate,
        [authority.root],
        PASSWORD,
    )
    assert pkcs12.load_pkcs12(bundle, PASSWORD).cert is not None  # control

    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(bundle, b"wrong password")
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(bundle, None)

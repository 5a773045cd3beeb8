"""Pure X.509: keys, certificate profiles and signing.

No I/O, no environment, no clock: the caller passes the validity window. Every profile is data
(`Profile`) fed to one shared builder, so subject, issuer, serial, SKI and AKI are set in exactly
one place and each profile only states its own extensions.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chalicelib.model import KeyType, SubjectDetails

_RSA_SIZES = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
_EC_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.EC_P256: ec.SECP256R1(),
    KeyType.EC_P384: ec.SECP384R1(),
}


def generate_private_key(key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
    if key_type is KeyType.ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if key_type in _EC_CURVES:
        return ec.generate_private_key(_EC_CURVES[key_type])
    return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_SIZES[key_type])


def key_type_of(public_key: CertificatePublicKeyTypes) -> KeyType | None:
    """The KeyType of a public key, or None when the service does not issue for that kind."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        for key_type, curve in _EC_CURVES.items():
            if public_key.curve.name == curve.name:
                return key_type
        return None
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519
    if isinstance(public_key, rsa.RSAPublicKey):
        for key_type, size in _RSA_SIZES.items():
            if public_key.key_size == size:
                return key_type
    return None


@dataclass(frozen=True)
class SigningAuthority:
    """A CA able to sign: its certificate and private key, loaded once."""

    certificate: x509.Certificate
    private_key: CertificateIssuerPrivateKeyTypes

    @functools.cached_property
    def authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """The AKI of everything this CA signs (read from its certificate once)."""
        return authority_key_identifier(self.certificate)


@dataclass(frozen=True)
class Validity:
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class Profile:
    """What a certificate type adds to the common base: its constraints, usages and names."""

    ca: bool
    path_length: int | None
    key_usage: x509.KeyUsage
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    subject_alt_names: tuple[x509.GeneralName, ...] = ()
    crl_url: str | None = None  # where the issuer's CRL is published (CRL Distribution Point)


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def root_profile() -> Profile:
    return Profile(
        ca=True, path_length=None, key_usage=_key_usage(key_cert_sign=True, crl_sign=True)
    )


def intermediate_profile(path_length: int, crl_url: str | None = None) -> Profile:
    return Profile(
        ca=True,
        path_length=path_length,
        key_usage=_key_usage(key_cert_sign=True, crl_sign=True),
        crl_url=crl_url,
    )


def _leaf_key_usage(key_type: KeyType) -> x509.KeyUsage:
    return _key_usage(digital_signature=True, key_encipherment=key_type.is_rsa)


def server_profile(
    key_type: KeyType, dns_names: list[str], ip_addresses: list[str], crl_url: str | None = None
) -> Profile:
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses]
    return Profile(
        ca=False,
        path_length=None,
        key_usage=_leaf_key_usage(key_type),
        extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,),
        subject_alt_names=tuple(names),
        crl_url=crl_url,
    )


def device_profile(key_type: KeyType, dns_name: str, crl_url: str | None = None) -> Profile:
    return Profile(
        ca=False,
        path_length=None,
        key_usage=_leaf_key_usage(key_type),
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
        subject_alt_names=(x509.DNSName(dns_name),),
        crl_url=crl_url,
    )


def verification_profile() -> Profile:
    """AWS IoT's proof of possession of a CA key: a short-lived leaf whose subject CN is the
    account's registration code. It is no CA and authenticates nothing (no extended key usage)."""
    return Profile(ca=False, path_length=None, key_usage=_key_usage(digital_signature=True))


def renewal_profile(
    certificate: x509.Certificate, key_type: KeyType, crl_url: str | None
) -> Profile:
    """The profile of `certificate` again (CA constraints, usages, names), for a renewal with a
    key of `key_type` (a leaf's key usage follows its key) and the issuer's current CRL URL."""
    extensions = certificate.extensions
    constraints = extensions.get_extension_for_class(x509.BasicConstraints).value
    key_usage = extensions.get_extension_for_class(x509.KeyUsage).value
    if not constraints.ca:
        key_usage = _leaf_key_usage(key_type)
    usages: tuple[x509.ObjectIdentifier, ...] = ()
    names: tuple[x509.GeneralName, ...] = ()
    with contextlib.suppress(x509.ExtensionNotFound):
        usages = tuple(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    with contextlib.suppress(x509.ExtensionNotFound):
        names = tuple(extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    return Profile(
        ca=constraints.ca,
        path_length=constraints.path_length,
        key_usage=key_usage,
        extended_key_usage=usages,
        subject_alt_names=names,
        crl_url=crl_url,
    )


def build_subject(common_name: str, details: SubjectDetails) -> x509.Name:
    attributes = []
    if details.country:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, details.country))
    if details.state:
        attributes.append(x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, details.state))
    if details.organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, details.organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def signature_hash(
    signing_key: CertificateIssuerPrivateKeyTypes,
) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(signing_key, ed25519.Ed25519PrivateKey):
        return None  # Ed25519 signs without a separate hash
    if isinstance(signing_key, ec.EllipticCurvePrivateKey) and signing_key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def sign_certificate(
    profile: Profile,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    validity: Validity,
    authority: SigningAuthority | None,
    self_signing_key: CertificateIssuerPrivateKeyTypes | None = None,
) -> x509.Certificate:
    """Build and sign one certificate; with no `authority` it is self-signed."""
    if authority is None:
        if self_signing_key is None:
            raise ValueError("a self-signed certificate needs its own private key")
        issuer_name, signing_key = subject, self_signing_key
    else:
        issuer_name, signing_key = authority.certificate.subject, authority.private_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(validity.not_before)
        .not_valid_after(validity.not_after)
        .add_extension(
            x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length), critical=True
        )
        .add_extension(profile.key_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if profile.extended_key_usage:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False
        )
    if profile.subject_alt_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(list(profile.subject_alt_names)), critical=False
        )
    if authority is not None:
        builder = builder.add_extension(authority.authority_key_identifier, critical=False)
    if profile.crl_url is not None:
        builder = builder.add_extension(crl_distribution_points(profile.crl_url), critical=False)
    return builder.sign(signing_key, signature_hash(signing_key))


def crl_distribution_points(url: str) -> x509.CRLDistributionPoints:
    """One distribution point, a full name (the URL): where relying parties fetch the CRL."""
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return x509.CRLDistributionPoints([point])


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI of anything `issuer` signs: its own Subject Key Identifier."""
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)


def certificate_to_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def private_key_to_pem(
    private_key: CertificateIssuerPrivateKeyTypes, passphrase: bytes | None = None
) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode("ascii")


def is_encrypted_private_key(pem: str) -> bool:
    return pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")


def load_trusted_private_key(
    pem: str, passphrase: bytes | None
) -> CertificateIssuerPrivateKeyTypes:
    """Load a key this service generated and stored itself.

    The RSA consistency check is skipped: it costs tens of milliseconds per load and only guards
    against keys from untrusted sources, which never reach this function.
    """
    key = serialization.load_pem_private_key(
        pem.encode("ascii"),
        password=passphrase if is_encrypted_private_key(pem) else None,
        unsafe_skip_rsa_key_validation=True,
    )
    if not isinstance(
        key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise ValueError(f"stored key of unsupported kind {type(key).__name__}")
    return key


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def pem_and_fingerprint(certificate: x509.Certificate, der: bytes | None = None) -> tuple[str, str]:
    """`certificate_to_pem` and `fingerprint_sha256` from one DER encoding (each of those
    encodes the certificate anew, and encoding is most of their cost): every issuance needs
    both. `der`, when the caller has it, is the certificate's encoding already made."""
    if der is None:
        der = certificate.public_bytes(serialization.Encoding.DER)
    encoded = base64.b64encode(der).decode("ascii")
    lines = "\n".join([encoded[start : start + 64] for start in range(0, len(encoded), 64)])
    pem = f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"
    return pem, hashlib.sha256(der).hexdigest()


def serial_hex(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")

"""Pure X.509 documents around certificates: CSR checks, CRLs and PKCS#12 bundles.

Like pki.py: no I/O, no environment, no clock.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12

from chalicelib.model import KeyType
from chalicelib.pki import (
    SigningAuthority,
    Validity,
    key_type_of,
    signature_hash,
)


class CsrError(ValueError):
    """A certificate signing request that cannot be used; the message says why."""


def _describe_key(public_key: object) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC {public_key.curve.name}"
    return type(public_key).__name__.removeprefix("_")


def public_key_from_csr(
    pem: str, allowed: frozenset[KeyType]
) -> tuple[CertificatePublicKeyTypes, KeyType]:
    """The CSR's public key after checking its signature and key type; nothing else is used.

    Subject and requested extensions are ignored on purpose: the profile is the server's.
    """
    try:
        request = x509.load_pem_x509_csr(pem.encode("utf-8"))
    except (ValueError, UnicodeEncodeError) as err:
        raise CsrError("is not a PEM certificate signing request") from err
    try:
        public_key = request.public_key()
        signature_valid = request.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as err:
        raise CsrError(f"cannot be checked: {err}") from err
    if not signature_valid:
        raise CsrError("signature does not verify with the request's public key")
    key_type = key_type_of(public_key)
    if key_type is None or key_type not in allowed:
        names = ", ".join(sorted(k.value for k in allowed))
        raise CsrError(f"key {_describe_key(public_key)} is not allowed here; allowed: {names}")
    return public_key, key_type


def build_crl(
    authority: SigningAuthority,
    revoked: list[tuple[int, datetime, x509.ReasonFlags]],
    validity: Validity,
    crl_number: int,
) -> x509.CertificateRevocationList:
    """A CRL signed by `authority` listing (serial, revocation time, reason) entries."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(authority.certificate.subject)
        .last_update(validity.not_before)
        .next_update(validity.not_after)
        .add_extension(authority.authority_key_identifier, critical=False)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    for serial, revoked_at, reason in revoked:
        entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
        if reason is not x509.ReasonFlags.unspecified:  # RFC 5280: omit rather than unspecified
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(authority.private_key, signature_hash(authority.private_key))


_GENERATED_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)


def pkcs12_bundle(
    name: str,
    private_key: CertificateIssuerPrivateKeyTypes,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
    password: bytes,
) -> bytes:
    if not isinstance(private_key, _GENERATED_KEY_TYPES):
        raise TypeError(f"not a key type this service generates: {type(private_key).__name__}")
    return pkcs12.serialize_key_and_certificates(
        name.encode(),
        private_key,
        certificate,
        chain,
        serialization.BestAvailableEncryption(password),
    )


def crl_bytes(crl: x509.CertificateRevocationList, crl_format: str) -> bytes:
    encoding = serialization.Encoding.DER if crl_format == "der" else serialization.Encoding.PEM
    return crl.public_bytes(encoding)

"""DeviceSigner port: who signs the devices of a bulk (in process, or a local process pool), and
the plain data that crosses to it."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from chalicelib import pki
from chalicelib.model import KeyType, SubjectDetails


@dataclass(frozen=True)
class KeyMaterial:
    """The subject's public key; the private key too when the server generated it."""

    public_key: CertificatePublicKeyTypes
    key_type: KeyType
    private_key: CertificateIssuerPrivateKeyTypes | None


@dataclass(frozen=True)
class BulkTerms:
    """What every certificate of one bulk shares."""

    authority: pki.SigningAuthority
    validity: pki.Validity
    subject: SubjectDetails
    key_type: KeyType  # of the keys the server generates
    crl_url: str | None = None  # the issuer's CRL Distribution Point, when one is published


@dataclass(frozen=True)
class DeviceOrder:
    device_id: str  # the common name
    fqdn: str  # the DNS SAN
    material: KeyMaterial | None  # from a CSR; None: generate a key of the bulk's key_type


@dataclass(frozen=True)
class SignedDevice:
    certificate: x509.Certificate
    certificate_der: bytes  # its encoding, made once: the record and the helper's reply use it
    key_type: KeyType
    private_key_pem: str | None  # None when the key came from a CSR


class DeviceSigner(Protocol):
    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Generator[SignedDevice, None, None]:
        """The certificates in the order of `orders`, lazily: each as soon as it and every one
        before it are signed, so that the caller can store them while the rest are signed.
        A caller that stops early closes the iterator."""

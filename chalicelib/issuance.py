"""The parts of issuance that need no storage: validity windows, key material, device signing,
the record."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from chalicelib import pki
from chalicelib.authority import Authority
from chalicelib.errors import Conflict, InvalidRequest
from chalicelib.model import (
    DEFAULT_VALIDITY_DAYS,
    ROOT_PARENT,
    CertificateRecord,
    CertType,
    IssueRequest,
    KeyType,
    SubjectDetails,
    iso_utc,
)
from chalicelib.names import device_fqdn, random_uuids
from chalicelib.pki_documents import CsrError, public_key_from_csr

BACKDATE = timedelta(minutes=5)
"""not_before is set this far in the past so that slightly slow clocks accept a new certificate."""


def validity_for(
    now: datetime, cert_type: CertType, requested_days: int | None, parent: Authority | None
) -> pki.Validity:
    """The requested or default lifetime; never past the issuer's not_after (400 if asked; 409
    when the issuer has expired)."""
    default_days = DEFAULT_VALIDITY_DAYS[cert_type]
    if parent is None:
        return pki.Validity(now - BACKDATE, now + timedelta(days=requested_days or default_days))
    limit = parent.signing.certificate.not_valid_after_utc
    if limit <= now:
        raise Conflict(
            f"parent_fqdn: CA {parent.fqdn} expired on {iso_utc(limit)} and issues no more "
            "certificates"
        )
    max_days = (limit - now) // timedelta(days=1)
    if requested_days is None:
        return pki.Validity(now - BACKDATE, min(now + timedelta(days=default_days), limit))
    if requested_days > max_days:
        raise InvalidRequest(
            "validity_days",
            f"must be at most {max_days}: the issuing CA {parent.fqdn} is valid until "
            f"{iso_utc(limit)}",
        )
    return pki.Validity(now - BACKDATE, now + timedelta(days=requested_days))


@dataclass(frozen=True)
class KeyMaterial:
    """The subject's public key; the private key too when the server generated it."""

    public_key: CertificatePublicKeyTypes
    key_type: KeyType
    private_key: CertificateIssuerPrivateKeyTypes | None

    @classmethod
    def generate(cls, key_type: KeyType) -> KeyMaterial:
        private_key = pki.generate_private_key(key_type)
        return cls(private_key.public_key(), key_type, private_key)

    @classmethod
    def from_csr(cls, csr: str, allowed: frozenset[KeyType], field: str) -> KeyMaterial:
        try:
            public_key, key_type = public_key_from_csr(csr, allowed)
        except CsrError as err:
            raise InvalidRequest(field, str(err)) from err
        return cls(public_key, key_type, None)


def build_record(
    *,
    fqdn: str,
    cert_type: CertType,
    parent: Authority | None,
    certificate: x509.Certificate,
    key_type: KeyType,
    stored_private_key_pem: str | None,
    now: datetime,
    device_id: str | None = None,
    certificate_der: bytes | None = None,
    generation: int = 1,
    previous_serial: str | None = None,
    acm_certificate_arn: str | None = None,
) -> CertificateRecord:
    certificate_pem, fingerprint = pki.pem_and_fingerprint(certificate, certificate_der)
    return CertificateRecord(
        fqdn=fqdn,
        cert_type=cert_type,
        parent_fqdn=parent.fqdn if parent else ROOT_PARENT,
        serial=pki.serial_hex(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        key_type=key_type,
        fingerprint_sha256=fingerprint,
        certificate_pem=certificate_pem,
        chain_pem=parent.chain_for_children if parent else "",
        private_key_pem=stored_private_key_pem,
        created_at=now,
        device_id=device_id,
        acm_certificate_arn=acm_certificate_arn,
        generation=generation,
        previous_serial=previous_serial,
    )


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


def device_orders(request: IssueRequest, parent_fqdn: str) -> list[DeviceOrder]:
    """One order per device of the request, each with a new UUID; every CSR is checked here,
    before anything is signed (400 naming `csr` or `csrs[i]`)."""
    sources: Sequence[KeyMaterial | None]
    if request.csrs:
        sources = [
            KeyMaterial.from_csr(csr, frozenset(KeyType), f"csrs[{index}]")
            for index, csr in enumerate(request.csrs)
        ]
    elif request.csr is not None:
        sources = [KeyMaterial.from_csr(request.csr, frozenset(KeyType), "csr")]
    else:
        sources = [None] * (request.count or 1)
    return [
        DeviceOrder(device_id, device_fqdn(device_id, parent_fqdn), material)
        for material, device_id in zip(sources, random_uuids(len(sources)), strict=True)
    ]


def sign_device(terms: BulkTerms, order: DeviceOrder) -> SignedDevice:
    material = order.material or KeyMaterial.generate(terms.key_type)
    certificate = pki.sign_certificate(
        pki.device_profile(material.key_type, order.fqdn, terms.crl_url),
        pki.build_subject(order.device_id, terms.subject),
        material.public_key,
        terms.validity,
        terms.authority,
    )
    key_pem = (
        pki.private_key_to_pem(material.private_key) if material.private_key is not None else None
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    return SignedDevice(certificate, der, material.key_type, key_pem)


class DeviceSigner(Protocol):
    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Generator[SignedDevice, None, None]:
        """The certificates in the order of `orders`, lazily: each as soon as it and every one
        before it are signed, so that the caller can store them while the rest are signed.
        A caller that stops early closes the iterator."""


class InProcessSigner:
    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Generator[SignedDevice, None, None]:
        for order in orders:
            yield sign_device(terms, order)

"""The parts of issuance that need no storage: validity windows, key material, what a bulk of
devices shares, signing a device, and the stored record of a signed certificate."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chalicelib import pki
from chalicelib.authority import Authority
from chalicelib.errors import Concept, Conflict, InvalidRequest
from chalicelib.held_keys import is_held
from chalicelib.kinds import DEVICE, KindPolicy, ProfileInputs
from chalicelib.model import (
    FILE_KEY,
    ROOT_PARENT,
    CertificateRecord,
    IssueRequest,
    KeyType,
    iso_utc,
)
from chalicelib.names import device_fqdn, random_uuids
from chalicelib.pki_documents import CsrError, public_key_from_csr
from chalicelib.ports.signer import BulkTerms, DeviceOrder, KeyMaterial, SignedDevice

BACKDATE = timedelta(minutes=5)
"""not_before is set this far in the past so that slightly slow clocks accept a new certificate."""


def validity_for(
    now: datetime,
    policy: KindPolicy,
    requested_days: int | None,
    parent: Authority | None,
    renewing: CertificateRecord | None = None,
) -> pki.Validity:
    """The requested or default lifetime, never past the issuer's not_after (400 when asked for;
    409 when the issuer has expired). A CA's renewal never ends before the generation it renews
    (409 when asked to): what the CA issued may run until then."""
    not_before = now - BACKDATE
    default_end = now + timedelta(days=policy.default_validity_days)
    floor = renewing.not_after if renewing is not None and policy.renewal_never_shortens else None
    if requested_days is not None:
        end = now + timedelta(days=requested_days)
        if floor is not None and end < floor:
            raise Conflict(
                f"{requested_days} days would end the CA's certificate on {iso_utc(end)}, before "
                f"the generation it renews ({iso_utc(floor)}), which bounds every certificate it "
                "issued: a CA's renewal never ends earlier; ask for more days, or leave "
                "validity_days out",
                Concept.VALIDITY,
            )
    else:
        end = default_end if floor is None else max(default_end, floor)
    if parent is None:
        return pki.Validity(not_before, end)
    limit = parent.signing.certificate.not_valid_after_utc
    if limit <= now:
        raise Conflict(
            f"CA {parent.fqdn} expired on {iso_utc(limit)} and issues no more certificates",
            Concept.ISSUER,
        )
    if requested_days is None:
        return pki.Validity(not_before, min(end, limit))
    if end > limit:
        max_days = (limit - now) // timedelta(days=1)
        raise InvalidRequest(
            Concept.VALIDITY,
            f"must be at most {max_days}: the issuing CA {parent.fqdn} is valid until "
            f"{iso_utc(limit)}",
        )
    return pki.Validity(not_before, end)


def generated_key(key_type: KeyType) -> KeyMaterial:
    private_key = pki.generate_private_key(key_type)
    return KeyMaterial(private_key.public_key(), key_type, private_key)


def key_from_csr(csr: str, policy: KindPolicy, index: int | None = None) -> KeyMaterial:
    """The CSR's public key once its signature and key type are checked (nothing else of a CSR
    is used: the profile is the service's)."""
    try:
        public_key, key_type = public_key_from_csr(csr, policy.key_types)
    except CsrError as err:
        raise InvalidRequest(Concept.CSR, str(err), index=index) from err
    return KeyMaterial(public_key, key_type, None)


def build_record(
    *,
    fqdn: str,
    policy: KindPolicy,
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
    key_store: str = FILE_KEY,
    key_id: str | None = None,
) -> CertificateRecord:
    """The document of a signed certificate. Its chain is not kept: the chain the service serves
    is built from the CAs' current generations whenever it is served (chalicelib.authority).
    `key_store` and `key_id` name a CA's key where a key store holds it."""
    certificate_pem, fingerprint = pki.pem_and_fingerprint(certificate, certificate_der)
    return CertificateRecord(
        fqdn=fqdn,
        cert_type=policy.cert_type,
        parent_fqdn=parent.fqdn if parent else ROOT_PARENT,
        serial=pki.serial_hex(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        key_type=key_type,
        fingerprint_sha256=fingerprint,
        certificate_pem=certificate_pem,
        chain_pem="",
        private_key_pem=stored_private_key_pem,
        created_at=now,
        device_id=device_id,
        acm_certificate_arn=acm_certificate_arn,
        generation=generation,
        previous_serial=previous_serial,
        key_store=key_store,
        key_id=key_id,
    )


def device_orders(request: IssueRequest, parent_fqdn: str) -> list[DeviceOrder]:
    """One order per device of the request, each with a new UUID; every CSR is checked here,
    before anything is signed (400 naming the CSR, and which one of a bulk)."""
    sources: Sequence[KeyMaterial | None]
    if request.csrs:
        sources = [key_from_csr(csr, DEVICE, index) for index, csr in enumerate(request.csrs)]
    elif request.csr is not None:
        sources = [key_from_csr(request.csr, DEVICE)]
    else:
        sources = [None] * (request.count or 1)
    return [
        DeviceOrder(device_id, device_fqdn(device_id, parent_fqdn), material)
        for material, device_id in zip(sources, random_uuids(len(sources)), strict=True)
    ]


def sign_device(terms: BulkTerms, order: DeviceOrder) -> SignedDevice:
    material = order.material or generated_key(terms.key_type)
    inputs = ProfileInputs(material.key_type, dns_names=(order.fqdn,), crl_url=terms.crl_url)
    certificate = pki.sign_certificate(
        DEVICE.profile(inputs),
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


HELD_KEY_THREADS = 8
"""A bulk under a CA whose key a key store holds is signed on this many threads: each signature
waits on the store (a KMS call), and the threads overlap those waits."""


class InProcessSigner:
    """Signs each device of a bulk in the calling process, one after the other; under a key
    store's CA, on threads that overlap the waits for its signatures."""

    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Generator[SignedDevice, None, None]:
        if is_held(terms.authority.private_key) and len(orders) > 1:
            yield from sign_on_threads(terms, orders)
            return
        for order in orders:
            yield sign_device(terms, order)


def sign_on_threads(
    terms: BulkTerms, orders: Sequence[DeviceOrder]
) -> Generator[SignedDevice, None, None]:
    """The devices in order, signed on HELD_KEY_THREADS threads; a caller that stops early
    leaves nothing signing on its behalf."""
    with ThreadPoolExecutor(HELD_KEY_THREADS, thread_name_prefix="held-key") as threads:
        futures = [threads.submit(sign_device, terms, order) for order in orders]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

"""Device issuance: one device, or a bulk stored as it is signed.

Every CSR is checked before anything is signed; each certificate is stored as soon as it is
signed (the signer may go on meanwhile), and the inventory events go out together at the end,
ten to a PutEvents call on AWS. Right before each certificate is stored, the store is asked
again whether its CA, or one above it, was revoked: none is stored after a revocation is filed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Sequence
from datetime import datetime

from chalicelib.audit import audit_issued
from chalicelib.authority import Authority, AuthorityCache
from chalicelib.errors import Conflict
from chalicelib.events import CertificateCreated, CertificateEvent
from chalicelib.issuance import (
    BulkTerms,
    DeviceOrder,
    DeviceSigner,
    SignedDevice,
    build_record,
    sign_device,
)
from chalicelib.model import CertificateRecord, CertType, IssuedCertificate
from chalicelib.ports.store import CertificateStore

Announce = Callable[[Sequence[CertificateEvent]], None]


class RevokedDuringBulk(Conflict):
    """The issuing CA, or one above it, was revoked while a bulk was being signed."""


class DeviceIssuer:
    def __init__(
        self,
        store: CertificateStore,
        authorities: AuthorityCache,
        signer: DeviceSigner,
        announce: Announce,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._authorities = authorities
        self._signer = signer
        self._announce = announce
        self._clock = clock

    def issue(
        self, parent: Authority, terms: BulkTerms, orders: Sequence[DeviceOrder], now: datetime
    ) -> list[IssuedCertificate]:
        if len(orders) == 1:
            return [self._store_one(parent, orders[0], sign_device(terms, orders[0]), now)]
        return self._store_bulk(parent, terms, orders, now)

    def _store_one(
        self, parent: Authority, order: DeviceOrder, signed: SignedDevice, now: datetime
    ) -> IssuedCertificate:
        record = device_record(parent, order, signed, now)
        self._authorities.refuse_if_revoked(parent, self._clock(), "parent_fqdn")
        self._store.put_certificate(record)
        audit_issued(record)
        self._announce([CertificateCreated.from_record(record)])
        return IssuedCertificate(record, signed.private_key_pem)

    def _store_bulk(
        self, parent: Authority, terms: BulkTerms, orders: Sequence[DeviceOrder], now: datetime
    ) -> list[IssuedCertificate]:
        self._authorities.refuse_if_revoked(parent, self._clock(), "parent_fqdn")  # nothing signed
        issued: list[IssuedCertificate] = []

        def records() -> Generator[CertificateRecord, None, None]:
            with contextlib.closing(self._signer.sign_devices(terms, orders)) as signed_devices:
                for order, signed in zip(orders, signed_devices, strict=True):
                    self._refuse_if_revoked_meanwhile(parent)  # a stat per CA of the chain
                    record = device_record(parent, order, signed, now)
                    issued.append(IssuedCertificate(record, signed.private_key_pem))
                    yield record

        with contextlib.closing(records()) as signed_records:  # a failed write stops signing
            written = self._store.put_certificates(signed_records, on_stored=audit_issued)
        # a failure part-way still tells the inventory about what was stored
        self._announce([CertificateCreated.from_record(record) for record in written.stored])
        if isinstance(written.failure, RevokedDuringBulk):
            raise RevokedDuringBulk(
                f"{written.failure}: it was revoked while this bulk was signed; "
                f"{len(written.stored)} of {len(orders)} certificates were issued before that "
                f"and stay stored (listed under {parent.fqdn}), the rest were not signed"
            ) from written.failure
        if written.failure is not None:
            raise written.failure
        return issued

    def _refuse_if_revoked_meanwhile(self, parent: Authority) -> None:
        try:
            self._authorities.refuse_if_revoked(parent, self._clock(), "parent_fqdn")
        except Conflict as err:
            raise RevokedDuringBulk(str(err)) from err


def device_record(
    parent: Authority, order: DeviceOrder, signed: SignedDevice, now: datetime
) -> CertificateRecord:
    return build_record(
        fqdn=order.fqdn,
        cert_type=CertType.CLIENT,
        parent=parent,
        certificate=signed.certificate,
        key_type=signed.key_type,
        stored_private_key_pem=signed.private_key_pem,
        now=now,
        device_id=order.device_id,
        certificate_der=signed.certificate_der,
    )

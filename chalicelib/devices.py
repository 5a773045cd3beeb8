"""Device issuance: one device, or a bulk stored as it is signed (by the signer: in process, or
a local process pool), each through the one issuer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime

from chalicelib.authority import Authority
from chalicelib.issuance import build_record, sign_device
from chalicelib.issuer import Issuer, Signed
from chalicelib.kinds import DEVICE
from chalicelib.model import CertificateRecord, IssuedCertificate
from chalicelib.ports.signer import BulkTerms, DeviceOrder, DeviceSigner, SignedDevice


class DeviceIssuer:
    def __init__(self, issuer: Issuer, signer: DeviceSigner) -> None:
        self._issuer = issuer
        self._signer = signer

    def issue(
        self,
        parent: Authority,
        terms: BulkTerms,
        orders: Sequence[DeviceOrder],
        now: datetime,
        bulk: bool,
    ) -> list[IssuedCertificate]:
        if not bulk:
            order = orders[0]
            signed = sign_device(terms, order)
            return [self._issuer.issue(Signed(device_record(parent, order, signed, now),
                                              signed.private_key_pem))]  # fmt: skip
        with contextlib.closing(self._signer.sign_devices(terms, orders)) as signed_devices:
            return self._issuer.issue_bulk(parent, _signed(parent, orders, signed_devices, now))


def _signed(
    parent: Authority,
    orders: Sequence[DeviceOrder],
    signed_devices: Iterator[SignedDevice],
    now: datetime,
) -> Iterator[Signed]:
    for order, signed in zip(orders, signed_devices, strict=True):
        yield Signed(device_record(parent, order, signed, now), signed.private_key_pem)


def device_record(
    parent: Authority, order: DeviceOrder, signed: SignedDevice, now: datetime
) -> CertificateRecord:
    return build_record(
        fqdn=order.fqdn,
        policy=DEVICE,
        parent=parent,
        certificate=signed.certificate,
        key_type=signed.key_type,
        stored_private_key_pem=signed.private_key_pem,
        now=now,
        device_id=order.device_id,
        certificate_der=signed.certificate_der,
    )

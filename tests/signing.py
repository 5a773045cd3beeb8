"""Inputs to bulk signing (chalicelib.issuance) without a store: the terms under a fresh EC root
named CELL, and device orders for it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib import pki
from chalicelib.issuance import BulkTerms, DeviceOrder, KeyMaterial
from chalicelib.model import KeyType, SubjectDetails
from chalicelib.names import device_fqdn, random_uuids

NOW = datetime.now(UTC).replace(microsecond=0)
CELL = "cell.example.com"


def make_terms(key_type: KeyType = KeyType.EC_P256, crl_url: str | None = None) -> BulkTerms:
    key = pki.generate_private_key(KeyType.EC_P256)
    window = pki.Validity(NOW - timedelta(minutes=5), NOW + timedelta(days=30))
    subject = pki.build_subject(CELL, SubjectDetails())
    ca = pki.sign_certificate(pki.root_profile(), subject, key.public_key(), window, None, key)
    details = SubjectDetails(country="DE", organization="Acme Devices")
    validity = pki.Validity(NOW - timedelta(minutes=5), NOW + timedelta(days=1))
    return BulkTerms(pki.SigningAuthority(ca, key), validity, details, key_type, crl_url)


def make_orders(count: int, materials: list[KeyMaterial | None] | None = None) -> list[DeviceOrder]:
    materials = materials or [None] * count
    return [
        DeviceOrder(device_id, device_fqdn(device_id, CELL), material)
        for device_id, material in zip(random_uuids(count), materials, strict=True)
    ]

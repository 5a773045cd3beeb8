"""Certificate records as tests build them, without signing: every optional field set, or a
root at its defaults. The PEM texts are placeholders: a store keeps them as they are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.model import CertificateRecord, CertType, KeyType

ISSUED_AT = datetime(2026, 1, 1, 12, 30, 15, tzinfo=UTC)

CERTIFICATE_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBqTCCAU+gAwIBAgIUQ2VydGlmaWNhdGVTdG9yZVRlc3QwCgYIKoZIzj0EAwIw\n"
    "-----END CERTIFICATE-----\n"
)
ISSUER_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBpDCCAUqgAwIBAgIURGV2aWNlQ2VsbDFJbnRlcm1lZGlhdGUwCgYIKoZIzj0E\n"
    "-----END CERTIFICATE-----\n"
)
ROOT_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBnzCCAUWgAwIBAgIURXhhbXBsZVJvb3RDZXJ0aWZpY2F0ZTAKBggqhkjOPQQD\n"
    "-----END CERTIFICATE-----\n"
)
PRIVATE_KEY_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgU3RvcmVUZXN0S2V5\n"
    "-----END PRIVATE KEY-----\n"
)
DEVICE_ID = "3f2b8c1e-9d4a-4e7b-8c21-5a6f0e9d1b47"
CELL = "cell1.devices.example.com"


def make_record(fqdn: str = f"{DEVICE_ID}.{CELL}", **overrides: Any) -> CertificateRecord:
    """A device record with every optional field set, so a round trip checks all of them."""
    fields: dict[str, Any] = {
        "fqdn": fqdn,
        "cert_type": CertType.CLIENT,
        "parent_fqdn": CELL,
        "serial": "5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8c9b7d5e3f",
        "not_before": ISSUED_AT - timedelta(minutes=5),
        "not_after": ISSUED_AT + timedelta(days=365),
        "key_type": KeyType.EC_P384,
        "fingerprint_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "certificate_pem": CERTIFICATE_PEM,
        "chain_pem": ISSUER_PEM + ROOT_PEM,
        "private_key_pem": PRIVATE_KEY_PEM,
        "created_at": ISSUED_AT,
        "device_id": DEVICE_ID,
        "acm_certificate_arn": "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c",
        "status": "active",
    }
    fields.update(overrides)
    return CertificateRecord(**fields)


def make_root_record(fqdn: str = "example.com") -> CertificateRecord:
    """A root: the optional fields at their defaults, an empty chain."""
    return make_record(
        fqdn,
        cert_type=CertType.ROOT,
        parent_fqdn="Root",
        not_after=ISSUED_AT + timedelta(days=3650),
        key_type=KeyType.RSA_4096,
        chain_pem="",
        private_key_pem=PRIVATE_KEY_PEM.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
        device_id=None,
        acm_certificate_arn=None,
    )

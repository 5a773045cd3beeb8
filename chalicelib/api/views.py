"""JSON shapes of the API: what a certificate looks like in each response."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from chalicelib.deletion import Deleted
from chalicelib.iot_onboarding import IotCaRegistered, VerificationCertificate
from chalicelib.kinds import policy_for
from chalicelib.model import (
    ROOT_PARENT,
    STATUS_ACTIVE,
    STATUS_REVOKED,
    CertificateRecord,
    InventoryItem,
    IssuedCertificate,
    days_left,
    iso_utc,
)
from chalicelib.revocation import Revoked
from chalicelib.service import CertificateDetails, HistoryPage


def _parent(parent_fqdn: str) -> str | None:
    return None if parent_fqdn == ROOT_PARENT else parent_fqdn


def certificate_view(details: CertificateDetails) -> dict[str, Any]:
    """GET /certificates/{certificate}: everything but the private key, as it stands now."""
    view = _record_view(details.record, details.chain_pem)
    revocation = details.revocation
    view["status"] = STATUS_REVOKED if revocation else STATUS_ACTIVE
    if revocation is not None:
        view["revoked_at"] = iso_utc(revocation.revoked_at)
        view["revocation_reason"] = revocation.reason
        if details.revoked_with is not None:
            view["revoked_with"] = details.revoked_with
    return view


def _record_view(record: CertificateRecord, chain_pem: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "fqdn": record.fqdn,
        "type": record.cert_type.value,
        "parent_fqdn": _parent(record.parent_fqdn),
        "serial": record.serial,
        "not_before": iso_utc(record.not_before),
        "not_after": iso_utc(record.not_after),
        "key_type": record.key_type.value,
        "fingerprint_sha256": record.fingerprint_sha256,
        "certificate": record.certificate_pem,
        "chain": chain_pem,
        "acm_certificate_arn": record.acm_certificate_arn,
        "generation": record.generation,
        "previous_serial": record.previous_serial,
    }
    if policy_for(record.cert_type).common_name_is_device_id:
        view["device_id"] = record.device_id
    if policy_for(record.cert_type).signs_certificates:
        view["key_store"] = record.key_store
        view["key_id"] = record.key_id
    return view


def history_view(page: HistoryPage, next_token: str | None) -> dict[str, Any]:
    """GET .../history: generations, oldest first, as GET shows one (no private key)."""
    items = [certificate_view(details) for details in page.items]
    return {"fqdn": page.fqdn, "items": items, "count": page.total, "next_token": next_token}


def revoked_view(revoked: Revoked) -> dict[str, Any]:
    """POST .../revoke: the certificate as revoked; for a CA, how many certificates it issued.
    (Its chain is not repeated: GET has it.)"""
    view = _record_view(revoked.record, "")
    view["status"] = STATUS_REVOKED
    view["revoked_at"] = iso_utc(revoked.revocation.revoked_at)
    view["revocation_reason"] = revoked.revocation.reason
    if revoked.issued_certificates is not None:
        view["issued_certificates"] = revoked.issued_certificates
    return view


def deleted_view(deleted: Deleted) -> dict[str, Any]:
    """DELETE: what was deleted. The revocations stay (the parent's CRL lists them)."""
    record = deleted.record
    return {
        "fqdn": record.fqdn,
        "type": record.cert_type.value,
        "parent_fqdn": _parent(record.parent_fqdn),
        "serial": record.serial,
        "deleted": deleted.deleted,
    }


def issued_view(issued: IssuedCertificate) -> dict[str, Any]:
    """POST responses: the certificate, and the private key of a leaf (returned this once)."""
    view = _record_view(issued.record, issued.chain_pem)
    if issued.private_key_pem is not None:
        view["private_key"] = issued.private_key_pem
    if issued.aws_iot is not None:
        view["aws_iot"] = asdict(issued.aws_iot)
    return view


def bulk_view(issued: list[IssuedCertificate]) -> dict[str, Any]:
    """POST /certificates/device with `count` or `csrs`: every item as a single issuance's
    response but for `chain`, which all items share and is given once."""
    items = []
    for certificate in issued:
        item = issued_view(certificate)
        del item["chain"]
        items.append(item)
    return {"items": items, "chain": issued[0].chain_pem, "count": len(issued)}


def list_item_view(item: InventoryItem) -> dict[str, Any]:
    return {
        "fqdn": item.fqdn,
        "type": item.cert_type.value,
        "parent_fqdn": _parent(item.parent_fqdn),
        "serial": item.serial,
        "valid_until": item.valid_until,
        "not_after": item.not_after,
        "key_type": item.key_type,
        "status": item.status,
    }


def expiring_item_view(item: InventoryItem, now: datetime) -> dict[str, Any]:
    """An item of GET /certificates/expiring: a listing's, with the whole days it has left."""
    return {**list_item_view(item), "days_left": days_left(item.not_after, now)}


def verification_view(verification: VerificationCertificate) -> dict[str, Any]:
    return {
        "certificate": verification.certificate_pem,
        "private_key": verification.private_key_pem,
        "not_after": iso_utc(verification.not_after),
    }


def iot_registration_view(registered: IotCaRegistered) -> dict[str, Any]:
    return {
        "fqdn": registered.ca_fqdn,
        "ca_certificate_id": registered.certificate_id,
        "ca_certificate_arn": registered.certificate_arn,
        "mode": registered.request.mode,
        "auto_registration": registered.request.auto_registration,
        "provisioning": registered.request.provisioning,
        "data_endpoint": registered.data_endpoint,
        "device_presents": registered.device_presents,
    }

"""Inventory items as both inventory adapters store them: the DynamoDB table's attributes, keys
(FQDN, ParentFQDN) and its `parent-index` (ParentFQDN, FQDN), which the SQLite table mirrors, so
every adapter pages the same way: by FQDN within a parent."""

from __future__ import annotations

from typing import Any

from chalicelib.model import CertType, ExpiringPage, ExpiryCursor, InventoryItem, InventoryPage

ATTRIBUTES = (
    "FQDN", "ParentFQDN", "Type", "ValidUntil", "Serial", "NotAfter", "KeyType",
    "Fingerprint", "CreatedAt", "Status", "AcmCertificateArn", "Generation",
)  # fmt: skip
NUMBER_ATTRIBUTES = frozenset({"Generation"})
"""Numbers in DynamoDB (compared as numbers); every other attribute is a string."""
GENERATION_FIELDS = ("Serial", "NotAfter", "ValidUntil", "KeyType", "Fingerprint", "Generation")
"""The attributes a renewal changes."""


def item_values(item: InventoryItem) -> tuple[str | int | None, ...]:
    """The item's values in the order of ATTRIBUTES (the SQLite columns)."""
    return (
        item.fqdn, item.parent_fqdn, item.cert_type.value, item.valid_until, item.serial,
        item.not_after, item.key_type, item.fingerprint, item.created_at, item.status,
        item.acm_certificate_arn, item.generation,
    )  # fmt: skip


def generation_values(item: InventoryItem) -> tuple[str | int, ...]:
    """The values a renewal changes, in the order of GENERATION_FIELDS."""
    return (
        item.serial, item.not_after, item.valid_until, item.key_type, item.fingerprint,
        item.generation,
    )  # fmt: skip


def item_to_attributes(item: InventoryItem) -> dict[str, str | int]:
    """The item as DynamoDB attribute names to values (None values left out)."""
    return {
        name: value
        for name, value in zip(ATTRIBUTES, item_values(item), strict=True)
        if value is not None
    }


def item_from_attributes(attributes: dict[str, Any]) -> InventoryItem:
    return InventoryItem(
        fqdn=attributes["FQDN"],
        parent_fqdn=attributes["ParentFQDN"],
        cert_type=CertType(attributes["Type"]),
        valid_until=attributes["ValidUntil"],
        serial=attributes["Serial"],
        not_after=attributes["NotAfter"],
        key_type=attributes["KeyType"],
        fingerprint=attributes["Fingerprint"],
        created_at=attributes["CreatedAt"],
        status=attributes["Status"],
        acm_certificate_arn=attributes.get("AcmCertificateArn"),
        generation=int(attributes.get("Generation", 1)),
    )


def expiring_page(items: list[InventoryItem], limit: int, more: bool, read: int) -> ExpiringPage:
    """As `page`, for the expiry listing: the cursor of the last item kept."""
    kept = items[:limit]
    more = more or len(items) > limit
    last = kept[-1] if more and kept else None
    cursor = ExpiryCursor(last.not_after, last.fqdn, last.parent_fqdn) if last else None
    return ExpiringPage(items=kept, last=cursor, read=read)


def page(items: list[InventoryItem], limit: int, more: bool) -> InventoryPage:
    """Adapters fetch limit + 1 items: the extra one only tells that more follow."""
    kept = items[:limit]
    more = more or len(items) > limit
    return InventoryPage(items=kept, last_fqdn=kept[-1].fqdn if more and kept else None)

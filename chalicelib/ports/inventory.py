"""Inventory port: who issued what, listed by parent (the DynamoDB table of the AWS backend,
SQLite locally), kept from the events."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from chalicelib.model import (
    NO_FILTER,
    ChildFilter,
    ExpiringPage,
    ExpiryCursor,
    InventoryItem,
    InventoryPage,
)


class Inventory(Protocol):
    def record_certificate(self, item: InventoryItem) -> bool:
        """Add the item unless it is there already; True when it was new (idempotent)."""

    def list_children(
        self,
        parent_fqdn: str,
        limit: int,
        after: str | None,
        child_filter: ChildFilter = NO_FILTER,
    ) -> InventoryPage:
        """Up to `limit` matching children of `parent_fqdn` by FQDN, starting after `after`."""

    def list_expiring(
        self, since: str, until: str, limit: int, after: ExpiryCursor | None
    ) -> ExpiringPage:
        """Up to `limit` active items, of every parent, whose NotAfter is from `since` to
        `until` (ISO 8601 UTC), by NotAfter then FQDN and parent, starting after `after`; read
        through an index of the active items by NotAfter, so that what lies outside the window
        (or is revoked) costs nothing."""

    def mark_expiry_notice(self, fqdn: str, parent_fqdn: str, day: str) -> bool:
        """Note that the item's expiry notice of `day` (YYYY-MM-DD) is sent, unless one of that
        day or later was; True when this call noted it (its notice is then to be sent). Only an
        active item takes a notice."""

    def update_status(self, fqdn: str, parent_fqdn: str, status: str) -> bool:
        """Set the item's status; False when there is no such item."""

    def set_acm_certificate_arn(self, fqdn: str, parent_fqdn: str, arn: str) -> bool:
        """Give the item the ARN it lacks; False when there is no such item or it has one."""

    def record_generation(self, item: InventoryItem) -> bool:
        """Move the item to `item`'s generation (serial, validity, key, fingerprint, and the ACM
        ARN when given) if it is at an earlier one; False when there is no such item or it is
        at this generation or a later one (a replayed or late event changes nothing)."""

    def remove_item(self, fqdn: str, parent_fqdn: str) -> bool:
        """Its certificate was deleted: the item leaves every listing and `find`, and stays as a
        tombstone (STATUS_DELETED) so that no event arriving late brings it back: recording,
        updating or renewing it changes nothing and returns False. (DynamoDB drops tombstones
        after DELETED_ITEM_DAYS.) False when there was no item, or it was removed already."""

    def is_removed(self, fqdn: str, parent_fqdn: str) -> bool:
        """Whether the key's item was removed (an event of it is then late: nothing to do)."""

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        """The item, or None when the inventory has none for this key."""

    def contains(self, fqdn: str, parent_fqdn: str) -> bool: ...

    def batch(self) -> AbstractContextManager[object]:
        """Writes inside commit together where the adapter can (one SQLite transaction); a
        no-op where each write stands alone (DynamoDB, in memory)."""

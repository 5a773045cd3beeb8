"""Keeping the inventory: what each event does to it, and rebuilding it from the store.

Events reach `InventoryKeeper.record` two ways: on AWS, the Lambda handler parses EventBridge's
envelope (`record_detail`); locally, the in-process publisher hands over the event objects
themselves, with no envelope to build and parse again. Recording is idempotent, so a replayed
event leaves one item, and order-tolerant: a `revoked` that arrives before its `created` builds
the item from the stored certificate. A `renewed` moves the item to its generation, never back
to an earlier one: an older generation's late event changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from chalicelib.errors import CorruptDocument, NotFound
from chalicelib.events import (
    CASCADE_DETAIL_TYPE,
    CREATED_DETAIL_TYPE,
    DELETED_DETAIL_TYPE,
    RENEWED_DETAIL_TYPE,
    REVOKED_DETAIL_TYPE,
    CertificateCreated,
    CertificateDeleted,
    CertificateEvent,
    CertificateExpiring,
    CertificateRenewed,
    CertificateRevoked,
    RevocationCascade,
)
from chalicelib.kinds import policy_for
from chalicelib.model import STATUS_REVOKED, CertificateRecord, InventoryItem, iso_utc
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.store import CertificateStore


def _skip(corrupt: CorruptDocument) -> None:
    """A corrupt document is `make fsck`'s to name; the inventory goes on with the others."""


class EventOutOfOrder(Exception):
    """An event came before the `created` of its certificate; the handler fails so that it is
    delivered again."""


FindImported = Callable[[list[CertificateRecord]], dict[str, str]]


def _none_imported(records: list[CertificateRecord]) -> dict[str, str]:
    return {}


def parse_event(detail_type: str, detail: dict[str, Any]) -> CertificateEvent:
    """An EventBridge detail as an event; ValueError/KeyError for one this service never sends."""
    if detail_type == CREATED_DETAIL_TYPE:
        return CertificateCreated.from_detail(detail)
    if detail_type == RENEWED_DETAIL_TYPE:
        return CertificateRenewed.from_detail(detail)
    if detail_type == REVOKED_DETAIL_TYPE:
        return CertificateRevoked.from_detail(detail)
    if detail_type == CASCADE_DETAIL_TYPE:
        return RevocationCascade.from_detail(detail)
    if detail_type == DELETED_DETAIL_TYPE:
        return CertificateDeleted.from_detail(detail)
    raise ValueError(f"unknown event detail-type {detail_type!r}")


class InventoryKeeper:
    def __init__(
        self,
        store: CertificateStore,
        inventory: Inventory,
        clock: Callable[[], datetime],
        reads_store: bool = True,
    ) -> None:
        """`reads_store`: whether an event that arrives before the certificate's `created` may
        be made good from the stored document. Not on AWS: the inventory function may not read
        documents, which hold private keys; such an event fails there (EventOutOfOrder), is
        retried until its `created` has made the item, and is dead-lettered if that never
        comes (`make reconcile` then restores the item)."""
        self._store = store
        self._inventory = inventory
        self._clock = clock
        self._reads_store = reads_store

    def record(self, events: Sequence[CertificateEvent]) -> int:
        """Apply the events (several commit together where the inventory can); how many
        changed an item."""
        created_at = iso_utc(self._clock())
        if len(events) == 1:  # a write of its own commits by itself
            return int(self._apply(events[0], created_at))
        changed = 0
        with self._inventory.batch():
            for event in events:
                changed += self._apply(event, created_at)
        return changed

    def record_detail(self, detail_type: str, detail: dict[str, Any]) -> bool:
        """The Lambda handler's entry: one EventBridge event detail."""
        return self.record([parse_event(detail_type, detail)]) == 1

    def _apply(self, event: CertificateEvent, created_at: str) -> bool:
        if isinstance(event, CertificateRenewed):  # before CertificateCreated, its base class
            if self._inventory.record_generation(event.to_inventory_item(created_at)):
                return True
            if self._inventory.contains(event.fqdn, event.parent_fqdn):
                return False  # at this generation or a later one already
            if self._inventory.is_removed(event.fqdn, event.parent_fqdn):
                return False  # late: its certificate was deleted
            return self._record_renewed_from_store(event, created_at)
        if isinstance(event, CertificateCreated):
            if self._inventory.record_certificate(event.to_inventory_item(created_at)):
                return True
            # there already (a replay, or built by an earlier `revoked`): only the ARN, which
            # nothing but this event carries, may still be missing
            arn = event.acm_certificate_arn
            if not arn:
                return False
            return self._inventory.set_acm_certificate_arn(event.fqdn, event.parent_fqdn, arn)
        if isinstance(event, CertificateRevoked):
            if event.generation_only:  # one generation superseded: the certificate stands
                return False
            if self._inventory.update_status(event.fqdn, event.parent_fqdn, STATUS_REVOKED):
                return True
            if self._inventory.is_removed(event.fqdn, event.parent_fqdn):
                return False  # late: its certificate was deleted
            return self._record_revoked_from_store(event, created_at)
        if isinstance(event, CertificateDeleted):  # the API removed the items it deleted;
            # this one again, in case a racing `created` brought it back meanwhile
            return self._inventory.remove_item(event.fqdn, event.parent_fqdn)
        if isinstance(event, (RevocationCascade, CertificateExpiring)):
            return False  # the cascade handler's (chalicelib.cascade); a notice for people
        raise ValueError(f"unknown event {event!r}")

    def _record_revoked_from_store(self, event: CertificateRevoked, created_at: str) -> bool:
        """A `revoked` whose `created` has not arrived (or was lost): the item comes from the
        stored certificate, already revoked; the late `created` then only adds an ACM ARN."""
        self._refuse_unless_store_is_read(event.fqdn, "revoked")
        try:
            record = self._store.get_certificate(event.fqdn)
        except NotFound as err:  # raised, so that the event is retried, then dead-lettered
            raise NotFound(f"revoked event for {event.fqdn}, which is not stored") from err
        if self._record_from_store(record, created_at, revoked=True):
            return True
        # created meanwhile (a concurrent delivery): mark that one
        return self._inventory.update_status(event.fqdn, event.parent_fqdn, STATUS_REVOKED)

    def _record_renewed_from_store(self, event: CertificateRenewed, created_at: str) -> bool:
        """A `renewed` with no item to move (its `created` is late or lost): the item comes
        from the store's current generation (this one, or a later one)."""
        self._refuse_unless_store_is_read(event.fqdn, "renewed")
        record = self._store.get_certificate(event.fqdn)
        revoked = self._store.is_revoked(record.parent_fqdn, record.fqdn)
        if self._record_from_store(record, created_at, revoked):
            return True
        return self._inventory.record_generation(self._item_of(record, created_at))

    def _refuse_unless_store_is_read(self, fqdn: str, detail_type: str) -> None:
        if not self._reads_store:
            raise EventOutOfOrder(
                f"{detail_type} event for {fqdn}, which the inventory does not list yet: retried "
                "until its created event has been recorded"
            )

    def missing_items(self) -> list[str]:
        """Stored certificates that the inventory does not list, or lists at an earlier
        generation: their FQDNs (with the generations when behind)."""
        problems = []
        for record in self._store.iter_certificates(on_corrupt=_skip):
            item = self._inventory.find(record.fqdn, record.parent_fqdn)
            if item is None:
                problems.append(record.fqdn)
            elif item.generation < record.generation:
                problems.append(
                    f"{record.fqdn} (inventory at generation {item.generation}, "
                    f"stored {record.generation})"
                )
        return sorted(problems)

    def reconcile(self, find_imported: FindImported = _none_imported) -> int:
        """Add missing inventory items and statuses from the store; the number changed.

        An item at an earlier generation than the store's current one moves to it. A server
        certificate's item also gets back the ACM ARN that only its `created` event carried
        (the stored document is written before the import), when that event was lost or came
        after a `revoked` that built the item: the ARNs come from `find_imported`, asked once
        for every server certificate whose item has none.
        """
        missing: list[tuple[CertificateRecord, bool]] = []  # and whether it is revoked
        without_arn: list[CertificateRecord] = []
        changed = 0
        for record in self._store.iter_certificates(on_corrupt=_skip):
            revoked = self._store.is_revoked(record.parent_fqdn, record.fqdn)
            item = self._inventory.find(record.fqdn, record.parent_fqdn)
            if item is None:
                missing.append((record, revoked))
                continue
            if item.generation < record.generation:
                changed += self._inventory.record_generation(self._item_of(record, item.created_at))
            if revoked and item.status != STATUS_REVOKED:
                changed += self._inventory.update_status(
                    record.fqdn, record.parent_fqdn, STATUS_REVOKED
                )
            if policy_for(record.cert_type).imported_into_acm and item.acm_certificate_arn is None:
                without_arn.append(record)
        servers = [
            record for record, _ in missing if policy_for(record.cert_type).imported_into_acm
        ]
        arns = find_imported(servers + without_arn) if servers or without_arn else {}
        for record, revoked in missing:
            arn = arns.get(record.fqdn)
            if arn and record.acm_certificate_arn is None:
                record = replace(record, acm_certificate_arn=arn)
            changed += self._record_from_store(record, iso_utc(record.created_at), revoked)
        for record in without_arn:
            if record.fqdn in arns:
                changed += self._inventory.set_acm_certificate_arn(
                    record.fqdn, record.parent_fqdn, arns[record.fqdn]
                )
        return changed

    def _record_from_store(self, record: CertificateRecord, created_at: str, revoked: bool) -> bool:
        """The item of a stored certificate, added unless there is one (revoked if it is)."""
        item = self._item_of(record, created_at)
        return self._inventory.record_certificate(
            replace(item, status=STATUS_REVOKED) if revoked else item
        )

    @staticmethod
    def _item_of(record: CertificateRecord, created_at: str) -> InventoryItem:
        item = CertificateCreated.from_record(record).to_inventory_item(created_at)
        return replace(item, generation=record.generation)

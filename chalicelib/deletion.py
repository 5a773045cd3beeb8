"""Deleting revoked certificates: the cleanup of throwaway fleets.

Only a revoked certificate is deleted: revoked itself, or below a revoked CA (it is then given a
revocation of its own first, so that its CA's CRL keeps listing it once the inventory no longer
does). A CA is deleted with every certificate it issued, below it too, only when asked to
(`cascade`), the deepest first: a deletion stopped half way leaves the CA above what is left,
to be deleted again.

What goes: every generation's document (a leaf's private key with it), the inventory item, a
CA's key in its key store (scheduled for removal) and, through a `deleted` event, what AWS IoT
registered of them (chalicelib.cascade.IotRemoval). What stays: the revocation documents, so
that the parent's CRL still lists what was deleted; the name therefore stays revoked under
that parent, and an issuance of it there again is refused.

Two races, designed out (docs/design.md):
- A renewal racing the deletion of its certificate writes its generation, then looks: it finds
  the certificate revoked (a deletion starts only then), revokes its generation and, when the
  first generation is gone, removes what it wrote. The deletion removes the first generation
  last and then looks once more for generations written meanwhile.
- An issuance racing the deletion of its CA writes, looks, finds its CA revoked, revokes and
  announces what it wrote and, when the CA is gone, removes it. The deletion removes a CA's
  documents after its children's and then looks at its children again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib import revocation
from chalicelib.audit import audit
from chalicelib.authority import AuthorityCache
from chalicelib.errors import AlreadyExists, Concept, Conflict, NotFound, StorageError
from chalicelib.events import Announce, CertificateDeleted
from chalicelib.kinds import policy_for
from chalicelib.model import (
    FILE_KEY,
    ROOT_PARENT,
    CertificateRecord,
    CertType,
    InventoryItem,
    inherited_reason,
    iso_utc,
)
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.key_store import CaKeyStore
from chalicelib.ports.store import CertificateStore

logger = logging.getLogger(__name__)
REASON_DELETED_CA = "cessationOfOperation"
"""The revocation of a certificate whose CA was deleted before it (chalicelib.fsck names it)."""
PURGE_PAGE = 500
EPOCH = "1970-01-01T00:00:00Z"
"""The start of the purge's window: every NotAfter is after it."""
PURGE_MARGIN = timedelta(days=1)
"""The purge (PURGE_EXPIRED_AFTER_DAYS = N) deletes a device expired more than N days and this
margin ago; its renewal is refused from N days on. A renewal that began before then has
finished long before the purge looks at it (a request lasts seconds): the two never meet."""


def name_spent(fqdn: str, parent_fqdn: str) -> AlreadyExists:
    """The 409 of an issuance of a deleted certificate's name under the same CA."""
    if parent_fqdn == ROOT_PARENT:
        return AlreadyExists(
            f"{fqdn} was a root CA that was revoked and deleted; its revocation stays, so the "
            "name is not issued as a root again",
            Concept.NAME,
        )
    return AlreadyExists(
        f"{fqdn} was revoked and deleted under CA {parent_fqdn}; its revocation stays on the "
        "CA's CRL, so the name is not issued there again",
        Concept.NAME,
    )


@dataclass(frozen=True)
class Deleted:
    record: CertificateRecord  # the certificate named (its current generation)
    deleted: int  # certificates deleted, it included


class Deletion:
    def __init__(
        self,
        store: CertificateStore,
        inventory: Inventory,
        authorities: AuthorityCache,
        key_stores: Mapping[str, CaKeyStore],
        announce: Announce,
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._authorities = authorities
        self._key_stores = key_stores
        self._announce = announce

    def delete(self, fqdn: str, cascade: bool, now: datetime) -> Deleted:
        record = self._store.get_certificate(fqdn)
        self._refuse_unless_revoked(record, now)
        signs = policy_for(record.cert_type).signs_certificates
        if signs and not cascade:
            issued = revocation.count_children(self._inventory, fqdn)
            if issued:
                raise Conflict(
                    f"CA {fqdn} issued {issued} certificates that are still stored; delete it "
                    "with cascade=true to delete them with it",
                    Concept.CERTIFICATE,
                )
        ca_ids: list[str] = []
        certificate_ids: tuple[str, ...] = ()
        if signs:
            deleted = self._delete_tree(record, ca_ids)
        else:
            certificate_ids = self._fingerprints(fqdn)
            self._delete_documents(record.fqdn, record.parent_fqdn)
            deleted = 1
        audit("deleted", record, deleted=deleted)
        self._announce([CertificateDeleted(
            fqdn, record.parent_fqdn, record.cert_type.value, deleted,
            ca_ids=tuple(ca_ids), certificate_ids=certificate_ids,
        )])  # fmt: skip
        return Deleted(record, deleted)

    def purge_expired(self, after_days: int, now: datetime) -> int:
        """Every device certificate whose current generation expired more than `after_days`
        days (and PURGE_MARGIN) before `now`, never revoked (the inventory's expiry index
        holds the active ones), is deleted; how many. Servers and CAs are deleted by name."""
        cutoff = now - timedelta(days=after_days) - PURGE_MARGIN
        purged, after = 0, None
        while True:
            page = self._inventory.list_expiring(EPOCH, iso_utc(cutoff), PURGE_PAGE, after)
            for item in page.items:
                if item.cert_type == CertType.CLIENT:
                    purged += self._purge(item, cutoff)
            if page.last is None:
                return purged
            after = page.last

    def _purge(self, item: InventoryItem, cutoff: datetime) -> int:
        """An expired device, never revoked, whose current generation (read from the store:
        the inventory may lag) ended before `cutoff`: its documents, its item and (by the
        `deleted` event) its AWS IoT registration go; 1, or 0 when it is not so. Its renewal
        is refused by then (PURGE_MARGIN), and its name (a UUID) is never issued again, so
        nothing can race this: its documents are removed once, with no revocation."""
        try:
            generations = self._store.list_generations(item.fqdn)  # read once, for both uses
        except NotFound:  # deleted meanwhile: the item was left
            self._inventory.remove_item(item.fqdn, item.parent_fqdn)
            return 0
        record = generations[-1]
        if record.not_after >= cutoff or record.parent_fqdn != item.parent_fqdn:
            return 0
        fingerprints = tuple(generation.fingerprint_sha256 for generation in generations)
        self._store.delete_certificate(item.fqdn)
        self._inventory.remove_item(item.fqdn, item.parent_fqdn)
        audit("purged", record, expired=iso_utc(record.not_after))
        self._announce([CertificateDeleted(
            item.fqdn, item.parent_fqdn, record.cert_type.value, 1, certificate_ids=fingerprints,
        )])  # fmt: skip
        return 1

    def _refuse_unless_revoked(self, record: CertificateRecord, now: datetime) -> None:
        """409 unless revoked; one revoked only through a CA above it gets a revocation of its
        own (the CA's CRL lists it from the inventory, which is about to forget it). What a
        renewal stored after the revocation without covering it (a crash) is covered."""
        filed = self._store.get_revocation(record.parent_fqdn, record.fqdn)
        if filed is not None:
            revocation.cover_generations(self._store, filed, now)
            return
        reason = self._revoked_above(record)
        if reason is None:
            raise Conflict(
                f"{record.fqdn} is not revoked; only a revoked certificate is deleted (revoke "
                "it first)",
                Concept.CERTIFICATE,
            )
        try:
            _, event = revocation.revoke(
                self._store, self._inventory, self._authorities, now, record.fqdn, reason
            )
        except Conflict:  # revoked meanwhile: its revocation stands, covered by `revoke`
            return
        self._announce([event])

    def _revoked_above(self, record: CertificateRecord) -> str | None:
        """The reason its own revocation takes when a CA above it is revoked (None: none is).
        A CA that was deleted was revoked: what it issued and outlived it (chalicelib.fsck names
        such a certificate) is revoked as no longer needed."""
        if record.parent_fqdn == ROOT_PARENT:
            return None
        try:
            above = self._authorities.chain(record.parent_fqdn, Concept.CERTIFICATE).revoked
        except NotFound:
            return REASON_DELETED_CA
        return None if above is None else inherited_reason(above.reason)

    def _fingerprints(self, fqdn: str) -> tuple[str, ...]:
        """AWS IoT's IDs of every generation (each may have been registered)."""
        try:
            generations = self._store.list_generations(fqdn)
        except NotFound:  # deleted meanwhile
            return ()
        return tuple(generation.fingerprint_sha256 for generation in generations)

    def _delete_tree(self, ca: CertificateRecord, ca_ids: list[str]) -> int:
        """Everything below the CA, then the CA; then its children are looked at again: an
        issuance that still saw the CA stored had made its item before."""
        deleted = self._delete_children(ca.fqdn, ca_ids)
        ca_ids += self._fingerprints(ca.fqdn)
        self._delete_documents(ca.fqdn, ca.parent_fqdn)
        self._authorities.forget(ca.fqdn)
        self._discard_key(ca)
        return deleted + self._delete_children(ca.fqdn, ca_ids) + 1

    def _delete_children(self, ca_fqdn: str, ca_ids: list[str]) -> int:
        children = list(revocation.children(self._inventory, ca_fqdn))
        leaves = [item for item in children if not policy_for(item.cert_type).signs_certificates]
        self._in_parallel(leaves)
        deleted = len(leaves)
        for item in children:
            if policy_for(item.cert_type).signs_certificates:
                try:
                    record = self._store.get_certificate(item.fqdn)
                except NotFound:  # its documents are gone already; only the item was left
                    self._inventory.remove_item(item.fqdn, item.parent_fqdn)
                    continue
                deleted += self._delete_tree(record, ca_ids)
        return deleted

    def _delete_documents(self, fqdn: str, parent_fqdn: str) -> None:
        """Its generations, the first last; then once more, for a generation that a racing
        renewal wrote after the first listing and before it saw the first one gone."""
        self._store.delete_certificate(fqdn)
        self._store.delete_certificate(fqdn)
        self._inventory.remove_item(fqdn, parent_fqdn)

    def _in_parallel(self, items: Sequence[InventoryItem]) -> None:
        """Each item's documents and item removed; at once up to the store's writers where its
        calls wait on the network (S3: a thousand devices in seconds, not minutes)."""

        def remove(item: InventoryItem) -> None:
            self._delete_documents(item.fqdn, item.parent_fqdn)

        writers = self._store.writers
        if writers < 2 or len(items) < 2:
            for item in items:
                remove(item)
            return
        with ThreadPoolExecutor(writers, "delete") as pool:
            for _ in pool.map(remove, items):  # each one's failure raised here
                pass

    def _discard_key(self, record: CertificateRecord) -> None:
        if record.key_store == FILE_KEY or record.key_id is None:
            return
        key_store = self._key_stores.get(record.key_store)
        if key_store is None:
            logger.error("the key %s of deleted CA %s stays in %s (not configured here)",
                         record.key_id, record.fqdn, record.key_store)  # fmt: skip
            return
        try:
            key_store.discard_key(record.key_id)
        except StorageError:
            logger.exception("the key %s of deleted CA %s stays in %s", record.key_id,
                             record.fqdn, record.key_store)  # fmt: skip

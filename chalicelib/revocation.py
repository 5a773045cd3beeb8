"""Revocation and CRLs.

A revocation is its own write-once document (`revocations/<issuer>/<fqdn>.json`), so the
certificate's documents are never rewritten. Revoking a certificate revokes every generation of
it, those stored so far and any a racing renewal stores, and ends its renewals; a renewal's
`revoke_previous` revokes the generation it replaced alone (`superseded`,
`<fqdn>@<serial>.json`).

The protocol with a renewal, which may store a new generation at any moment: the revocation
writes its own document first and only then lists the generations; any generation its first
reading missed gets a revocation of its own. The renewal writes its generation first and only
then looks for the revocation (chalicelib.issuer). Whatever the interleaving, one of them sees
the other, and every generation ends up on the CRL (docs/design.md).

A revoked CA's certificates are revoked with it: its CRL lists every certificate it issued, and
so does the CRL of every CA below it, for relying parties that check only a leaf's CRL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from chalicelib import pki
from chalicelib.authority import AuthorityCache
from chalicelib.errors import AlreadyExists, Concept
from chalicelib.events import CertificateRevoked
from chalicelib.issuance import BACKDATE
from chalicelib.kinds import policy_for
from chalicelib.model import (
    CertificateRecord,
    InventoryItem,
    RevocationRecord,
    inherited_reason,
)
from chalicelib.pki_documents import build_crl
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.store import CertificateStore

CRL_VALIDITY = timedelta(days=7)
_PAGE = 1000


@dataclass(frozen=True)
class Revoked:
    record: CertificateRecord
    revocation: RevocationRecord
    issued_certificates: int | None  # for a CA: how many certificates it issued


def revoke(
    store: CertificateStore,
    inventory: Inventory,
    authorities: AuthorityCache,
    now: datetime,
    fqdn: str,
    reason: str,
) -> tuple[Revoked, CertificateRevoked]:
    """File the revocation, then cover any generation stored meanwhile; the event to publish.
    AlreadyExists when the certificate was revoked before (after covering, in case a renewal
    that raced the first revocation never got to its own look)."""
    generations = store.list_generations(fqdn)
    record = generations[-1]
    serials = tuple(
        generation.serial
        for generation in generations
        if generation is record
        or store.get_generation_revocation(record.parent_fqdn, fqdn, generation.serial) is None
    )
    revocation = RevocationRecord(
        fqdn, record.parent_fqdn, record.serial, reason, now,
        serials=serials if len(generations) > 1 else (),
    )  # fmt: skip
    try:
        store.put_revocation(revocation)
    except AlreadyExists as err:
        existing = store.get_revocation(record.parent_fqdn, fqdn)
        if existing is not None:
            cover_generations(store, existing, now)
        raise AlreadyExists(f"{fqdn} is already revoked", Concept.CERTIFICATE) from err
    late = cover_generations(store, revocation, now)
    issued = None
    if policy_for(record.cert_type).signs_certificates:
        authorities.forget(fqdn)
        issued = count_children(inventory, fqdn)
    revoked = [generation for generation in generations if generation.serial in serials] + late
    return Revoked(record, revocation, issued), CertificateRevoked.from_revocation(
        revocation, revoked
    )


def uncovered(store: CertificateStore, revocation: RevocationRecord) -> Iterator[CertificateRecord]:
    """Each generation of the certificate that the revocation does not list and that has no
    revocation of its own, as it is looked at (a caller that covers it does so before the next
    is looked at)."""
    for generation in store.list_generations(revocation.fqdn):
        if generation.serial in revocation.revoked_serials:
            continue
        if store.get_generation_revocation(
            revocation.issuer_fqdn, revocation.fqdn, generation.serial
        ):
            continue
        yield generation


def cover_generations(
    store: CertificateStore, revocation: RevocationRecord, now: datetime
) -> list[CertificateRecord]:
    """The revocation's own look: every generation of the certificate that it does not list and
    that has no revocation of its own gets one (same reason). Idempotent."""
    covered = []
    for generation in uncovered(store, revocation):
        try:
            store.put_revocation(
                RevocationRecord(
                    revocation.fqdn, revocation.issuer_fqdn, generation.serial,
                    revocation.reason, now, generation_only=True,
                )
            )  # fmt: skip
        except AlreadyExists:  # the renewal's own look revoked it first
            continue
        covered.append(generation)
    return covered


def revocation_of(store: CertificateStore, record: CertificateRecord) -> RevocationRecord | None:
    """What revoked this generation, if anything: the certificate's revocation (which revokes
    every generation of it), or the generation's own."""
    revocation = store.get_revocation(record.parent_fqdn, record.fqdn)
    if revocation is not None:
        if record.serial in revocation.revoked_serials:
            return revocation
        own = store.get_generation_revocation(record.parent_fqdn, record.fqdn, record.serial)
        return own or revocation
    return store.get_generation_revocation(record.parent_fqdn, record.fqdn, record.serial)


def count_children(inventory: Inventory, parent_fqdn: str) -> int:
    return sum(1 for _ in children(inventory, parent_fqdn))


def children(inventory: Inventory, parent_fqdn: str) -> Iterator[InventoryItem]:
    """Every certificate the CA issued, as the inventory lists them, a page at a time."""
    after = None
    while True:
        page = inventory.list_children(parent_fqdn, _PAGE, after)
        yield from page.items
        if page.last_fqdn is None:
            return
        after = page.last_fqdn


def _serials(store: CertificateStore, item: InventoryItem) -> list[str]:
    """Every generation's serial: the inventory's for a certificate never renewed, else read."""
    if item.generation == 1:
        return [item.serial]
    return [generation.serial for generation in store.list_generations(item.fqdn)]


CrlEntry = tuple[int, datetime, x509.ReasonFlags]


def certificate_revocation_list(
    store: CertificateStore,
    inventory: Inventory,
    authorities: AuthorityCache,
    now: datetime,
    ca_fqdn: str,
) -> x509.CertificateRevocationList:
    """A CRL signed by the CA, valid for CRL_VALIDITY, numbered by the time it was made. When
    the CA or one above it is revoked, it lists every certificate the CA issued."""
    authority = authorities.current(ca_fqdn, Concept.CERTIFICATE)
    entries: dict[int, CrlEntry] = {}
    for revocation in sorted(store.list_revocations(ca_fqdn), key=lambda r: r.revoked_at):
        for serial in revocation.revoked_serials:
            number = int(serial, 16)
            if number not in entries:  # the earliest revocation of a serial stands
                entries[number] = (number, revocation.revoked_at, _reason(revocation.reason))
    chain = authorities.chain(ca_fqdn, Concept.CERTIFICATE)
    if chain.revoked is not None:
        reason = _reason(inherited_reason(chain.revoked.reason))
        for item in children(inventory, ca_fqdn):
            for serial in _serials(store, item):
                number = int(serial, 16)
                entries.setdefault(number, (number, chain.revoked.revoked_at, reason))
    listed = sorted(entries.values(), key=lambda entry: (entry[1], entry[0]))
    # Backdated like certificates, so a client whose clock lags a little accepts a fresh CRL,
    # but never before a revocation it lists.
    this_update = max([now - BACKDATE, *(entry[1] for entry in listed)])
    validity = pki.Validity(this_update, now + CRL_VALIDITY)
    # Microseconds of wall time: two CRLs issued in the same second still get increasing numbers.
    return build_crl(authority.signing, listed, validity, crl_number=time.time_ns() // 1000)


def _reason(reason: str) -> x509.ReasonFlags:
    return x509.ReasonFlags(reason)

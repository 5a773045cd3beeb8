"""Revocation and CRLs.

A revocation is its own write-once document (`revocations/<issuer>/<fqdn>.json`), so the
certificate's object is never rewritten; a CA's CRL lists the revocations filed under it.
Revoking a certificate revokes each of its generations that was not revoked before, and ends its
renewals; a renewal's `revoke_previous` revokes the generation it replaced alone (`superseded`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from chalicelib import pki
from chalicelib.authority import AuthorityCache
from chalicelib.events import CertificateRevoked
from chalicelib.issuance import BACKDATE
from chalicelib.model import CertificateRecord, RevocationRecord
from chalicelib.pki_documents import build_crl
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.store import CertificateStore

CRL_VALIDITY = timedelta(days=7)
_COUNT_PAGE = 1000


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
    """File the revocation (AlreadyExists when revoked before); the event to publish."""
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
    store.put_revocation(revocation)
    issued = None
    if record.cert_type.is_ca:
        authorities.forget(fqdn)
        issued = count_children(inventory, fqdn)
    revoked = [generation for generation in generations if generation.serial in serials]
    return Revoked(record, revocation, issued), CertificateRevoked.from_revocation(
        revocation, revoked
    )


def revoke_generation(
    store: CertificateStore, record: CertificateRecord, reason: str, now: datetime
) -> RevocationRecord:
    """Revoke one generation alone (the certificate itself stays valid and renewable)."""
    revocation = RevocationRecord(
        record.fqdn, record.parent_fqdn, record.serial, reason, now, generation_only=True
    )
    store.put_revocation(revocation)
    return revocation


def revocation_of(
    store: CertificateStore, record: CertificateRecord, is_current: bool
) -> RevocationRecord | None:
    """What revoked this generation, if anything: the certificate's revocation, or (for an
    earlier generation: only a renewal revokes one alone) its own."""
    revocation = store.get_revocation(record.parent_fqdn, record.fqdn)
    if revocation is not None and record.serial in revocation.revoked_serials:
        return revocation
    if is_current:
        return None
    return store.get_generation_revocation(record.parent_fqdn, record.fqdn, record.serial)


def count_children(inventory: Inventory, parent_fqdn: str) -> int:
    total, after = 0, None
    while True:
        page = inventory.list_children(parent_fqdn, _COUNT_PAGE, after)
        total += len(page.items)
        if page.last_fqdn is None:
            return total
        after = page.last_fqdn


def certificate_revocation_list(
    store: CertificateStore, authorities: AuthorityCache, now: datetime, ca_fqdn: str
) -> x509.CertificateRevocationList:
    """A CRL signed by the CA, valid for CRL_VALIDITY, numbered by the time it was made."""
    authority = authorities.get(ca_fqdn, "certificate")
    entries, listed = [], set()
    for revocation in sorted(store.list_revocations(ca_fqdn), key=lambda r: r.revoked_at):
        for serial in revocation.revoked_serials:
            if serial not in listed:  # the earliest revocation of a serial stands
                listed.add(serial)
                reason = x509.ReasonFlags(revocation.reason)
                entries.append((int(serial, 16), revocation.revoked_at, reason))
    # Backdated like certificates, so a client whose clock lags a little accepts a fresh CRL.
    validity = pki.Validity(now - BACKDATE, now + CRL_VALIDITY)
    # Microseconds of wall time: two CRLs issued in the same second still get increasing numbers.
    return build_crl(authority.signing, entries, validity, crl_number=time.time_ns() // 1000)

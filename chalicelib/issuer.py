"""The one issuer: every certificate the service stores is written here, in one order of steps,
whichever use case signed it (root, intermediate, server, device, bulk, renewal).

1. Store what was signed, create-only: a taken name (or, for a renewal, a taken generation) is a
   409 and nothing is written.
2. Then look for what a concurrent revocation wrote: the chain above it (every CA's current
   generation and whether it is revoked, read now) and the certificate itself (a renewal's;
   a new one's name may be that of a deleted certificate, whose revocation stays: what was
   just stored is removed again and the request answers 409).
   A revocation filed before this look is seen here: what was just stored is revoked too and
   the request answers 409 (and when its CA, or the certificate renewed, was deleted meanwhile,
   what was stored is removed). A revocation filed after it looks for what was stored before
   it and finds this (chalicelib.revocation). So of two racing operations one always sees the other,
   whatever the timing: the protocol and its interleavings are in docs/design.md.
3. Audit, announce (events), and import a server certificate into ACM.
4. Answer with the chain as it stands now.

A bulk is stored while it is signed and looks every CHECKPOINT certificates and at the end; what
it stored after its last clean look is revoked with it when a look finds its CA revoked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.audit import audit, audit_issued
from chalicelib.authority import Authority, AuthorityCache, Chain
from chalicelib.deletion import name_spent
from chalicelib.errors import (
    AlreadyExists,
    CaRevoked,
    CertificateIsRevoked,
    Concept,
    Conflict,
    StorageError,
)
from chalicelib.events import (
    Announce,
    CertificateCreated,
    CertificateDeleted,
    CertificateEvent,
    CertificateRenewed,
    CertificateRevoked,
)
from chalicelib.kinds import policy_for
from chalicelib.model import (
    REASON_SUPERSEDED,
    ROOT_PARENT,
    CertificateRecord,
    IssuedCertificate,
    RevocationRecord,
    inherited_reason,
)
from chalicelib.ports.importer import CertificateImporter, CertificateImportError
from chalicelib.ports.store import CertificateStore

logger = logging.getLogger(__name__)
CHECKPOINT = 50
"""A bulk looks for a revocation of its CA after this many stored certificates (and at the
end): what it stored before a clean look stands, what came after is revoked with the CA."""
ANNOUNCED_TOGETHER = 10
"""A bulk announces what it stored ten at a time (what one PutEvents call takes), as it goes:
a revocation of its CA meanwhile counts every certificate stored up to a few before it."""


@dataclass(frozen=True)
class Signed:
    """A signed certificate's record, and the private key returned with it (a leaf's, once)."""

    record: CertificateRecord
    private_key_pem: str | None


@dataclass(frozen=True)
class Renewal:
    """What a renewal adds to storing a new generation."""

    previous: CertificateRecord
    revoke_previous: bool


class RevokedDuringBulk(Conflict):
    """The CA of a bulk, or one above it, was revoked while the bulk was stored."""


class Issuer:
    def __init__(
        self,
        store: CertificateStore,
        authorities: AuthorityCache,
        importer: CertificateImporter,
        announce: Announce,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._authorities = authorities
        self._importer = importer
        self._announce = announce
        self._clock = clock

    def issue(self, signed: Signed, renewal: Renewal | None = None) -> IssuedCertificate:
        """Store one certificate (a new one, or a new generation of one) and answer for it."""
        record = signed.record
        self._store_once(record, renewal)
        audit_issued(record, renewal.previous if renewal else None)
        # The certificate's own revocation: a renewal's; a new one's name may be a deleted
        # certificate's, except a device's (a new UUID).
        looked_at = renewal is not None or record.device_id is None
        chain = self._authorities.chain(
            record.parent_fqdn, Concept.ISSUER,
            certificate=(record.parent_fqdn, record.fqdn) if looked_at else None,
        )  # fmt: skip
        if chain.revoked is not None:
            anchor = record.fqdn if renewal else record.parent_fqdn
            self.revoke_stored([record], chain.revoked, anchor, inherited=True)
            raise CaRevoked(
                chain.revoked.fqdn, chain.revoked.revoked_at, chain.revoked.reason, Concept.ISSUER
            )
        if chain.certificate_revoked:
            if renewal is None:  # the name of a deleted certificate, whose revocation stays
                self._store.delete_certificate(record.fqdn)
                raise name_spent(record.fqdn, record.parent_fqdn)
            own = self._store.get_revocation(record.parent_fqdn, record.fqdn)
            if own is None:  # a revocation is never removed; read it as it was seen
                raise StorageError(f"the revocation of {record.fqdn} could not be read")
            self.revoke_stored([record], own, record.fqdn, inherited=False)
            raise CertificateIsRevoked(record.fqdn)
        later = self._after_renewal(record, renewal) if renewal is not None else []
        record = self._imported(record, signed.private_key_pem, chain)
        self.announce([self._stored_event(record, renewal), *later])
        return IssuedCertificate(record, signed.private_key_pem, chain_pem=chain.pem)

    def issue_bulk(self, parent: Authority, signed: Iterable[Signed]) -> list[IssuedCertificate]:
        """Store a bulk as it is signed; every certificate answered for has been seen stored
        before any revocation of its CA."""
        bulk = _Bulk(self, parent)
        written = self._store.put_certificates(bulk.records(signed), on_stored=bulk.stored)
        failure = written.failure
        try:
            chain = bulk.checkpoint()  # the last look, over whatever the writes stored
        except RevokedDuringBulk as revoked:
            failure = revoked
            chain = None
        if isinstance(failure, RevokedDuringBulk):
            raise RevokedDuringBulk(
                f"{failure.message}; {len(bulk.confirmed)} certificates of this bulk were stored "
                f"before that and stand (listed under {parent.fqdn}), {len(bulk.revoked)} "
                "stored after it were revoked with it, and the rest were not signed",
                Concept.ISSUER,
            ) from failure
        if failure is not None:
            raise failure
        assert chain is not None
        return [
            IssuedCertificate(item.record, item.private_key_pem, chain_pem=chain.pem)
            for item in bulk.in_order()
        ]

    # The steps ------------------------------------------------------------------------------

    def _store_once(self, record: CertificateRecord, renewal: Renewal | None) -> None:
        try:
            self._store.put_certificate(record)
        except AlreadyExists as err:
            if renewal is None:
                raise AlreadyExists(
                    f"{record.fqdn} already exists; an existing certificate is never replaced",
                    Concept.NAME,
                ) from err
            winner = self._store.get_generation(record.fqdn, record.generation)
            raise AlreadyExists(
                f"{record.fqdn} was renewed meanwhile: generation {winner.generation} (serial "
                f"{winner.serial}) is current; nothing was written",
                Concept.CERTIFICATE,
            ) from err

    def look(self, parent_fqdn: str) -> Chain:
        """The chain above what `parent_fqdn` signs, and its revocation, read now."""
        return self._authorities.chain(parent_fqdn, Concept.ISSUER)

    def announce(self, events: Sequence[CertificateEvent]) -> None:
        self._announce(events)

    def revoke_stored(
        self,
        records: Sequence[CertificateRecord],
        cause: RevocationRecord,
        anchor_fqdn: str,
        inherited: bool,
        announced: bool = False,
    ) -> None:
        """Revoke what this request stored after a revocation it lost the race to: under a
        revoked CA, each certificate as a whole; for a revoked certificate, the new generation.
        Their `created` events go out first unless they were `announced` already. Then, when
        `anchor_fqdn` was deleted meanwhile, what was stored goes too (_withdraw_if_deleted)."""
        now = self._clock()
        reason = inherited_reason(cause.reason) if inherited else cause.reason
        events: list[CertificateEvent] = []
        for record in records:
            revocation = RevocationRecord(
                record.fqdn, record.parent_fqdn, record.serial, reason, now,
                generation_only=not inherited or record.generation > 1,
            )  # fmt: skip
            try:
                self._store.put_revocation(revocation)
            except AlreadyExists:  # revoked by the other side already: it stands
                continue
            audit("revoked", record, reason=reason, generation=record.generation)
            events.append(CertificateRevoked.from_revocation(revocation, [record]))
        created = [] if announced else [CertificateCreated.from_record(r) for r in records]
        self.announce([*created, *events])
        self._withdraw_if_deleted(records, anchor_fqdn)

    def _withdraw_if_deleted(self, records: Sequence[CertificateRecord], anchor_fqdn: str) -> None:
        """After a look found what this request stored revoked: when `anchor_fqdn` (the CA it
        was issued under, or the certificate it renewed) was deleted meanwhile, what was stored
        goes too, as the deletion may have looked before it was written (chalicelib.deletion).
        Its revocation stays; the inventory drops the item its `created` made."""
        if anchor_fqdn == ROOT_PARENT or self._store.exists(anchor_fqdn):
            return
        for record in records:
            self._store.delete_certificate(record.fqdn)
        self.announce([
            CertificateDeleted(record.fqdn, record.parent_fqdn, record.cert_type.value, 1,
                               certificate_ids=(record.fingerprint_sha256,))
            for record in records
        ])  # fmt: skip

    def _after_renewal(self, record: CertificateRecord, renewal: Renewal) -> list[CertificateEvent]:
        events: list[CertificateEvent] = []
        previous = renewal.previous
        if renewal.revoke_previous:
            revocation = RevocationRecord(
                previous.fqdn, previous.parent_fqdn, previous.serial, REASON_SUPERSEDED,
                self._clock(), generation_only=True,
            )  # fmt: skip
            try:
                self._store.put_revocation(revocation)
            except AlreadyExists:  # revoked alone before, or with the certificate: it stands
                pass
            else:
                audit("revoked", previous, reason=REASON_SUPERSEDED, generation=previous.generation)
                events.append(CertificateRevoked.from_revocation(revocation, [previous]))
        if policy_for(record.cert_type).signs_certificates:
            self._authorities.renewed(record)
        return events

    def _imported(
        self, record: CertificateRecord, private_key_pem: str | None, chain: Chain
    ) -> CertificateRecord:
        """A server certificate with its key is imported into ACM after the write (so a taken
        name never reaches ACM), a renewal into the same ARN. A failure is logged; the
        certificate and its one-time key are still returned. One from a CSR is not imported:
        ACM needs the private key."""
        if not policy_for(record.cert_type).imported_into_acm or private_key_pem is None:
            return record
        try:
            arn = self._importer.import_server_certificate(record, private_key_pem, chain.pem)
        except CertificateImportError:
            logger.exception(
                "generation %d of %s is stored but not imported", record.generation, record.fqdn
            )
            return record
        return (
            record
            if record.acm_certificate_arn or arn is None
            else replace(record, acm_certificate_arn=arn)
        )

    @staticmethod
    def _stored_event(record: CertificateRecord, renewal: Renewal | None) -> CertificateEvent:
        if renewal is None:
            return CertificateCreated.from_record(record)
        return CertificateRenewed.from_record(record)


class _Bulk:
    """One bulk's bookkeeping: what was stored, what a clean look confirmed, what was revoked."""

    def __init__(self, issuer: Issuer, parent: Authority) -> None:
        self._issuer = issuer
        self._parent = parent
        self._keys: dict[str, str | None] = {}  # FQDN -> the private key returned once
        self._order: dict[str, int] = {}  # FQDN -> its place in the bulk
        self._pending: list[CertificateRecord] = []  # stored, not yet seen by a clean look
        self._unannounced: list[CertificateRecord] = []
        self._lock = threading.Lock()
        self.confirmed: list[Signed] = []
        self.revoked: list[CertificateRecord] = []

    def records(self, signed: Iterable[Signed]) -> Iterator[CertificateRecord]:
        for item in signed:
            with self._lock:
                due = len(self._pending) >= CHECKPOINT
            if due:
                self.checkpoint()  # raises RevokedDuringBulk: no further record is taken
            self._keys[item.record.fqdn] = item.private_key_pem
            self._order[item.record.fqdn] = len(self._order)
            yield item.record

    def stored(self, record: CertificateRecord) -> None:
        """Each write as it succeeds (on a writer thread where the store writes concurrently):
        audited at once, announced with the next ones."""
        audit_issued(record)
        with self._lock:
            self._pending.append(record)
            self._unannounced.append(record)
            due = len(self._unannounced) >= ANNOUNCED_TOGETHER
        if due:
            self._announce_stored()

    def _announce_stored(self) -> None:
        with self._lock:
            stored, self._unannounced = self._unannounced, []
        self._issuer.announce([CertificateCreated.from_record(record) for record in stored])

    def checkpoint(self) -> Chain:
        """Look: what was stored before a clean look stands; under a revoked CA, what was
        stored since the last clean look is revoked (RevokedDuringBulk)."""
        self._announce_stored()
        with self._lock:
            seen, self._pending = self._pending, []
        chain = self._issuer.look(self._parent.fqdn)
        if chain.revoked is not None:
            self._issuer.revoke_stored(
                seen, chain.revoked, self._parent.fqdn, inherited=True, announced=True
            )
            self.revoked += seen
            raise RevokedDuringBulk(
                f"CA {chain.revoked.fqdn} was revoked on "
                f"{chain.revoked.revoked_at.strftime('%Y-%m-%dT%H:%M:%SZ')}",
                Concept.ISSUER,
            )
        self.confirmed += [Signed(record, self._keys.get(record.fqdn)) for record in seen]
        return chain

    def in_order(self) -> list[Signed]:
        """The confirmed certificates in the order they were signed (concurrent writes may
        finish in another)."""
        return sorted(self.confirmed, key=lambda item: self._order[item.record.fqdn])

"""Use cases: issue, renew, revoke, fetch and list certificates, and keep the inventory.

Depends on `pki`, the kind policies and the ports only. Each use case decides what to sign;
storing it, and everything after, is the one issuer's (chalicelib.issuer). CA material is loaded
once per process (chalicelib.authority); what can change under it (a CA's renewal or
revocation) is read from the store whenever it matters.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from chalicelib import bundles, pki, revocation
from chalicelib.audit import audit, audit_notice
from chalicelib.authority import Authority, AuthorityCache, Chain
from chalicelib.cascade import Cursor, IotRemoval, RevocationCascade, TimeIsUp, never
from chalicelib.deletion import Deleted, Deletion, name_spent
from chalicelib.devices import DeviceIssuer
from chalicelib.errors import (
    AlreadyExists,
    CaRevoked,
    Concept,
    Conflict,
    CorruptDocument,
    InvalidRequest,
    NotFound,
    StorageError,
)
from chalicelib.events import (
    CertificateDeleted,
    CertificateEvent,
    CertificateExpiring,
    CertificateRevoked,
)
from chalicelib.events import (
    RevocationCascade as CascadeEvent,
)
from chalicelib.held_keys import held_key_id, is_held
from chalicelib.inventory_keeping import InventoryKeeper, parse_event
from chalicelib.iot_onboarding import (
    IotCaRegistered,
    IotCaRequest,
    IotOnboarding,
    VerificationCertificate,
    refuse_ed25519,
    refuse_unaccepted,
)
from chalicelib.issuance import (
    InProcessSigner,
    build_record,
    device_orders,
    generated_key,
    key_from_csr,
    validity_for,
)
from chalicelib.issuer import Issuer, Signed
from chalicelib.kinds import (
    DEVICE,
    INTERMEDIATE,
    ROOT,
    SERVER,
    KindPolicy,
    ProfileInputs,
    policy_for,
    split_names,
)
from chalicelib.model import (
    FILE_KEY,
    ROOT_PARENT,
    STATUS_ACTIVE,
    STATUS_REVOKED,
    CertificatePage,
    CertificateRecord,
    CertType,
    ChildFilter,
    ExpiringPage,
    ExpiryCursor,
    InventoryItem,
    IssuedCertificate,
    IssueRequest,
    RenewRequest,
    RevocationRecord,
    days_left,
    inherited_reason,
    iso_utc,
    utc_now,
)
from chalicelib.names import is_under, proper_suffixes
from chalicelib.ports.importer import CertificateImporter
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.iot_registry import IotRegistry
from chalicelib.ports.key_store import CaKeyStore, ListsKeys
from chalicelib.ports.publisher import EventDeliveryError, EventPublisher
from chalicelib.ports.signer import BulkTerms, DeviceSigner, KeyMaterial
from chalicelib.ports.store import CertificateStore
from chalicelib.renewal import Renewer

logger = logging.getLogger(__name__)
EXPIRY_SCAN_PAGE = 500
"""Certificates the expiry scan notes and announces at a time."""


@dataclass(frozen=True)
class CertificateDetails:
    """A stored generation as it stands now: its revocation (its own, or, when a CA above it is
    revoked, that CA's, named by `revoked_with`), and the chain above it (empty when revoked)."""

    record: CertificateRecord
    revocation: RevocationRecord | None
    chain_pem: str
    revoked_with: str | None = None


@dataclass(frozen=True)
class HistoryPage:
    fqdn: str
    items: list[CertificateDetails]
    total: int
    next_generation: int | None  # where the next page starts; None: this was the last


class CertificateService:
    def __init__(
        self,
        store: CertificateStore,
        inventory: Inventory,
        publisher: EventPublisher,
        importer: CertificateImporter,
        ca_key_passphrase: bytes | None = None,
        clock: Callable[[], datetime] = utc_now,
        signer: DeviceSigner | None = None,
        revocation_recheck: timedelta = timedelta(0),
        public_base_url: str | None = None,
        iot_registry: IotRegistry | None = None,
        iot_device_policy_name: str = "",
        inventory_reads_store: bool = True,
        key_stores: Mapping[str, CaKeyStore] | None = None,
        default_key_store: str = FILE_KEY,
        purge_expired_after_days: int = 0,
    ) -> None:
        self._store = store
        self._key_stores = dict(key_stores or {})
        self.default_key_store = default_key_store
        self._inventory = inventory
        self._publisher = publisher
        self._passphrase = ca_key_passphrase
        self.clock = clock
        self._public_base_url = public_base_url
        self.authorities = AuthorityCache(
            store, ca_key_passphrase, revocation_recheck, self._key_stores
        )
        self.issuer = Issuer(store, self.authorities, importer, self._announce, clock)
        self.inventory_keeper = InventoryKeeper(store, inventory, clock, inventory_reads_store)
        self._importer = importer
        self._devices = DeviceIssuer(self.issuer, signer or InProcessSigner())
        self._renewer = Renewer(
            store, inventory, importer, self.authorities, self.issuer, clock, self._crl_url,
            purged_after=timedelta(days=purge_expired_after_days) if purge_expired_after_days
            else None,
        )  # fmt: skip
        self._iot = IotOnboarding(iot_registry, self.authorities, clock, iot_device_policy_name)
        self._cascade = RevocationCascade(store, inventory, iot_registry)
        self._iot_removal = IotRemoval(iot_registry)
        self._deletion = Deletion(
            store, inventory, self.authorities, self._key_stores, self._announce
        )

    # Issuance -----------------------------------------------------------------------------

    def create_root(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn)
        key_store = self._key_store(request)
        self._refuse_existing(fqdn, ROOT_PARENT)
        return self._issue(ROOT, request, fqdn, None, ProfileInputs(request.key_type), key_store)

    def create_intermediate(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn)
        key_store = self._key_store(request)
        parent = self._resolve_parent(fqdn, request.parent_fqdn)
        if parent.path_length is not None:
            if parent.path_length == 0:
                raise InvalidRequest(
                    Concept.ISSUER,
                    f"CA {parent.fqdn} has path_length 0 and may not issue an intermediate CA",
                )
            if request.path_length > parent.path_length - 1:
                raise InvalidRequest(
                    Concept.PATH_LENGTH,
                    f"must be at most {parent.path_length - 1} under {parent.fqdn} "
                    f"(its path_length is {parent.path_length})",
                )
        self._refuse_existing(fqdn, parent.fqdn)
        inputs = ProfileInputs(
            request.key_type, path_length=request.path_length, crl_url=self._crl_url(parent)
        )
        return self._issue(INTERMEDIATE, request, fqdn, parent, inputs, key_store)

    def create_server(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn)
        parent = self._resolve_parent(fqdn, request.parent_fqdn)
        # No existence check first: the write-once put refuses a taken FQDN before the ACM
        # import, and skipping the look-up spares an AWS call.
        dns_names, ip_addresses = split_names((fqdn, *request.sans))
        inputs = ProfileInputs(
            request.key_type, dns_names, ip_addresses, crl_url=self._crl_url(parent)
        )
        return self._issue(SERVER, request, fqdn, parent, inputs)

    def create_device(self, request: IssueRequest) -> IssuedCertificate:
        return self.create_devices(request)[0]

    def create_devices(self, request: IssueRequest) -> list[IssuedCertificate]:
        """One device certificate, or a bulk of them (`count` or `csrs`) in one request."""
        now = self.clock()
        parent = self.authorities.current(
            _required(request.parent_fqdn, Concept.ISSUER), Concept.ISSUER
        )
        self.authorities.refuse_if_revoked(parent, now, Concept.ISSUER)
        validity = validity_for(now, DEVICE, request.validity_days, parent)
        self._refuse_oversized_bulk(parent, request)
        orders = device_orders(request, parent.fqdn)
        registering = request.aws_iot is not None and request.aws_iot.register
        if registering:
            self._iot.refuse_unless_available()  # before anything is stored
            refuse_unaccepted(parent)
            key_types = [order.material.key_type if order.material else request.key_type
                         for order in orders]  # fmt: skip
            source = Concept.KEY_TYPE
            if request.csrs:
                source = Concept.CSRS
            elif request.csr is not None:
                source = Concept.CSR
            refuse_ed25519(key_types, source)
        terms = BulkTerms(
            parent.signing, validity, request.subject, request.key_type, self._crl_url(parent)
        )
        issued = self._devices.issue(parent, terms, orders, now, bulk=request.is_bulk)
        if registering and request.aws_iot is not None:
            return self._iot.register_devices(parent, issued, request.aws_iot.thing)
        return issued

    def _refuse_oversized_bulk(self, parent: Authority, request: IssueRequest) -> None:
        """A bulk larger than its CA's key store signs in one request (KMS: each certificate
        is a call within the account's rate), before anything is signed."""
        key_store = self._key_stores.get(parent.record.key_store)
        limit = key_store.max_bulk if key_store is not None else None
        size = request.count or len(request.csrs)
        if limit is None or size <= limit:
            return
        raise InvalidRequest(
            Concept.COUNT if request.count else Concept.CSRS,
            f"must be at most {limit} under CA {parent.fqdn}, whose key is in "
            f"{parent.record.key_store}: each certificate is one signature there, within the "
            "account's request rate; split the bulk",
        )

    def renew(self, fqdn: str, request: RenewRequest) -> IssuedCertificate:
        """A new generation of the certificate (see chalicelib.renewal)."""
        return self._renewer.renew(fqdn, request)

    def _issue(
        self,
        policy: KindPolicy,
        request: IssueRequest,
        fqdn: str,
        parent: Authority | None,
        inputs: ProfileInputs,
        key_store: str = FILE_KEY,
    ) -> IssuedCertificate:
        """Sign a root, an intermediate or a server certificate; the issuer stores it. A CA's key
        is made in `key_store`, and removed from it again when the CA is not stored because its
        name was taken meanwhile."""
        now = self.clock()
        validity = validity_for(now, policy, request.validity_days, parent)  # before a key
        material = self._key_material(policy, request, fqdn, key_store)
        with self._discarded_unless_stored(material, key_store):
            issued = self._sign_and_store(
                policy, request, fqdn, parent, inputs, material, validity, now, key_store
            )
        if is_held(material.private_key):  # stored: signing with it needs no look-up
            self.authorities.keep_key(fqdn, material.private_key)  # type: ignore[arg-type]
        return issued

    def _sign_and_store(
        self,
        policy: KindPolicy,
        request: IssueRequest,
        fqdn: str,
        parent: Authority | None,
        inputs: ProfileInputs,
        material: KeyMaterial,
        validity: pki.Validity,
        now: datetime,
        key_store: str,
    ) -> IssuedCertificate:
        inputs = replace(inputs, key_type=material.key_type)
        certificate = pki.sign_certificate(
            policy.profile(inputs),
            pki.build_subject(fqdn, request.subject),
            material.public_key,
            validity,
            parent.signing if parent else None,
            self_signing_key=material.private_key,
        )
        if parent is not None:  # the refusal before storing: a key can take seconds to make
            self.authorities.refuse_if_revoked(parent, self.clock(), Concept.ISSUER)
        stored_key, returned_key = self._private_keys(policy, material)
        record = build_record(
            fqdn=fqdn,
            policy=policy,
            parent=parent,
            certificate=certificate,
            key_type=material.key_type,
            stored_private_key_pem=stored_key,
            now=now,
            key_store=key_store,
            key_id=held_key_id(material.private_key),
        )
        return self.issuer.issue(Signed(record, returned_key))

    @contextlib.contextmanager
    def _discarded_unless_stored(self, material: KeyMaterial, key_store: str) -> Iterator[None]:
        """A CA key made in a key store is removed from it again when its CA is refused before
        being stored (its name taken meanwhile, its parent revoked): no key without its CA.
        (A failed write whose outcome is unknown keeps the key: the CA may stand.)"""
        try:
            yield
        except (AlreadyExists, CaRevoked, Conflict, InvalidRequest):
            key_id = held_key_id(material.private_key)
            if key_id is not None:
                try:
                    self._key_stores[key_store].discard_key(key_id)
                except StorageError:  # the refusal is the answer; the key is left for teardown
                    logger.exception("the key %s of a refused CA stays in %s", key_id, key_store)
            raise

    def _key_store(self, request: IssueRequest) -> str:
        """The key store a new CA's key is made in: the request's, else the default; 400 when
        this deployment does not offer it."""
        name = request.key_store or self.default_key_store
        if name != FILE_KEY and name not in self._key_stores:
            offered = ", ".join([FILE_KEY, *self._key_stores])
            raise InvalidRequest(
                Concept.KEY_STORE, f"{name} is not offered by this deployment; it offers {offered}"
            )
        return name

    def _key_material(
        self, policy: KindPolicy, request: IssueRequest, fqdn: str, key_store: str
    ) -> KeyMaterial:
        """The caller's key (a CSR), else a new one: made here, or in the CA's key store."""
        if request.csr is not None:
            return key_from_csr(request.csr, policy)
        if not policy.allows_key(request.key_type):
            raise InvalidRequest(
                Concept.KEY_TYPE, f"{request.key_type.value}: {policy.key_type_rule()}"
            )
        if key_store == FILE_KEY:
            return generated_key(request.key_type)
        key = self._key_stores[key_store].create_key(fqdn, request.key_type)
        return KeyMaterial(key.public_key(), request.key_type, key)

    def _private_keys(
        self, policy: KindPolicy, material: KeyMaterial
    ) -> tuple[str | None, str | None]:
        """(stored, returned): a CA's key is stored (encrypted with the passphrase when one is
        set) and never returned; a leaf's is stored plain and returned once."""
        if material.private_key is None or is_held(material.private_key):
            return None, None
        if policy.encrypts_stored_key:
            return pki.private_key_to_pem(material.private_key, self._passphrase), None
        key_pem = pki.private_key_to_pem(material.private_key)
        return key_pem, key_pem if policy.returns_private_key else None

    def _announce(self, events: Sequence[CertificateEvent]) -> None:
        """Publish; a delivery failure is logged, the stored certificates stand."""
        if not events:
            return
        try:
            self._publisher.publish(events)
        except EventDeliveryError as err:
            logger.exception(
                "stored, but the inventory was not told (%s); reconcile_inventory() restores it",
                err,
            )

    def _crl_url(self, issuer: Authority) -> str | None:
        """The issuer's CRL Distribution Point, when CRLs are published (PUBLIC_BASE_URL)."""
        if self._public_base_url is None:
            return None
        return f"{self._public_base_url}/certificates/{issuer.fqdn}/crl"

    def _refuse_existing(self, fqdn: str, parent_fqdn: str) -> None:
        """A cheap 409 before generating a CA key (the write-once put, and the issuer's look at
        a deleted name's revocation, would refuse it anyway)."""
        if self._store.exists(fqdn):
            raise AlreadyExists(
                f"{fqdn} already exists; an existing certificate is never replaced", Concept.NAME
            )
        if self._store.is_revoked(parent_fqdn, fqdn):
            raise name_spent(fqdn, parent_fqdn)

    def _resolve_parent(self, fqdn: str, parent_fqdn: str | None) -> Authority:
        """The given parent (which must lie above `fqdn`), else the closest existing CA above it;
        refused early when it is revoked."""
        parent = self._find_parent(fqdn, parent_fqdn)
        self.authorities.refuse_if_revoked(parent, self.clock(), Concept.ISSUER)
        return parent

    def _find_parent(self, fqdn: str, parent_fqdn: str | None) -> Authority:
        if parent_fqdn is not None:
            if not is_under(fqdn, parent_fqdn):
                raise InvalidRequest(
                    Concept.NAME, f"{fqdn} must lie under its parent CA {parent_fqdn}"
                )
            return self.authorities.current(parent_fqdn, Concept.ISSUER)
        for candidate in proper_suffixes(fqdn):
            try:
                return self.authorities.current(candidate, Concept.ISSUER)
            except (NotFound, InvalidRequest):
                continue
        raise NotFound(f"no CA exists above {fqdn}; create one or name the parent", Concept.ISSUER)

    # Queries ------------------------------------------------------------------------------

    def get_certificate(self, fqdn: str, serial: str | None = None) -> CertificateDetails:
        """The current generation (or the one with `serial`) as it stands now; for a server,
        with its ACM ARN."""
        record = self._generation(fqdn, serial)
        if policy_for(record.cert_type).imported_into_acm and record.acm_certificate_arn is None:
            item = self._inventory.find(record.fqdn, record.parent_fqdn)
            if item is not None and item.acm_certificate_arn:
                record = replace(record, acm_certificate_arn=item.acm_certificate_arn)
        chain = self.authorities.chain(record.parent_fqdn, Concept.CERTIFICATE)
        return self._details(record, revocation.revocation_of(self._store, record), chain)

    @staticmethod
    def _details(
        record: CertificateRecord, own: RevocationRecord | None, chain: Chain
    ) -> CertificateDetails:
        if chain.revoked is None:
            return CertificateDetails(record, own, chain.pem)
        if own is not None:
            return CertificateDetails(record, own, "")
        ca = chain.revoked
        inherited = RevocationRecord(
            record.fqdn, record.parent_fqdn, record.serial, inherited_reason(ca.reason),
            ca.revoked_at,
        )  # fmt: skip
        return CertificateDetails(record, inherited, "", revoked_with=ca.fqdn)

    def history(self, fqdn: str, limit: int, from_generation: int = 1) -> HistoryPage:
        """Generations, oldest first, from `from_generation`, `limit` of them."""
        numbers = self._store.generation_numbers(fqdn)
        wanted = [number for number in numbers if number >= from_generation][: limit + 1]
        records = [self._store.get_generation(fqdn, number) for number in wanted[:limit]]
        items = []
        if records:  # every generation has the same issuer
            chain = self.authorities.chain(records[0].parent_fqdn, Concept.CERTIFICATE)
            own = self._store.get_revocation(records[0].parent_fqdn, fqdn)
            for record in records:
                revoked = own or self._store.get_generation_revocation(
                    record.parent_fqdn, fqdn, record.serial
                )
                items.append(self._details(record, revoked, chain))
        more = wanted[limit] if len(wanted) > limit else None
        return HistoryPage(fqdn, items, len(numbers), more)

    def list_expiring(
        self,
        within_days: int,
        limit: int,
        after: ExpiryCursor | None = None,
        now: datetime | None = None,
    ) -> ExpiringPage:
        """Active certificates of the whole fleet whose NotAfter is from `now` (the clock's, by
        default) to `within_days` days after it, soonest first (the inventory's expiry index)."""
        now = now or self.clock()
        until = now + timedelta(days=within_days)
        return self._inventory.list_expiring(iso_utc(now), iso_utc(until), limit, after)

    def notify_expiring(self, notice_days: int) -> int:
        """The expiry scan: an `expiring` event for each active certificate whose end is within
        `notice_days`, at most one a day per certificate (the inventory notes each notice before
        it is sent, so a second scan that day, or one in another process, sends none again); how
        many were sent. Revoked certificates and a renewed certificate's earlier generations are
        not in the listing it reads."""
        now = self.clock()
        today = now.date().isoformat()
        sent, after = 0, None
        while True:
            page = self.list_expiring(notice_days, EXPIRY_SCAN_PAGE, after, now)
            notices: list[CertificateEvent] = [
                CertificateExpiring(
                    item.fqdn, item.cert_type.value, item.parent_fqdn, item.serial,
                    item.not_after, days_left(item.not_after, now),
                )
                for item in page.items
                if self._inventory.mark_expiry_notice(item.fqdn, item.parent_fqdn, today)
            ]  # fmt: skip
            self._announce(notices)
            sent += len(notices)
            if page.last is None:
                return sent
            after = page.last

    def list_certificates(
        self,
        parent_fqdn: str | None,
        limit: int,
        after: str | None,
        expiring_within_days: int | None = None,
        status: str | None = None,
    ) -> CertificatePage:
        """Children of a CA, or the roots when no parent is given, ordered by FQDN. Below a
        revoked CA every certificate is revoked, whatever its own status."""
        parent_key = parent_fqdn or ROOT_PARENT
        inherited = False
        if parent_fqdn is not None:
            if not self._store.exists(parent_fqdn):
                raise NotFound(f"certificate {parent_fqdn} not found", Concept.ISSUER)
            inherited = self._below_revoked_ca(parent_fqdn)
        until = None
        if expiring_within_days is not None:
            until = iso_utc(self.clock() + timedelta(days=expiring_within_days))
        if inherited and status == STATUS_ACTIVE:
            return CertificatePage(items=[], last_fqdn=None)
        child_filter = ChildFilter(until, None if inherited else status)
        page = self._inventory.list_children(parent_key, limit, after, child_filter)
        items: list[InventoryItem] = page.items
        if inherited:
            items = [replace(item, status=STATUS_REVOKED) for item in items]
        return CertificatePage(items=items, last_fqdn=page.last_fqdn)

    def _below_revoked_ca(self, parent_fqdn: str) -> bool:
        try:
            return self.authorities.chain(parent_fqdn, Concept.ISSUER).is_revoked
        except InvalidRequest:  # not a CA: it issued nothing
            return False

    # Revocation and bundles ---------------------------------------------------------------

    def revoke(self, fqdn: str, reason: str) -> revocation.Revoked:
        """Revoke; issuance under a revoked CA is refused from then on (409)."""
        revoked, event = revocation.revoke(
            self._store, self._inventory, self.authorities, self.clock(), fqdn, reason
        )
        audit("revoked", revoked.record, reason=reason)
        self._announce([event])
        return revoked

    def purge_expired(self, after_days: int) -> int:
        """Vault's tidy: the devices expired more than `after_days` days ago, never revoked,
        are deleted; how many (chalicelib.deletion)."""
        return self._deletion.purge_expired(after_days, self.clock())

    def delete(self, fqdn: str, cascade: bool = False) -> Deleted:
        """Delete a revoked certificate, and with `cascade` a revoked CA with everything below
        it (chalicelib.deletion)."""
        return self._deletion.delete(fqdn, cascade, self.clock())

    def certificate_revocation_list(self, ca_fqdn: str) -> x509.CertificateRevocationList:
        if not self._store.exists(ca_fqdn):  # deleted: another process may still know the CA
            raise NotFound(f"certificate {ca_fqdn} not found", Concept.CERTIFICATE)
        return revocation.certificate_revocation_list(
            self._store, self._inventory, self.authorities, self.clock(), ca_fqdn
        )

    def bundle(
        self, fqdn: str, bundle_format: str, password: str | None, serial: str | None = None
    ) -> bundles.Bundle:
        record = self._generation(fqdn, serial)
        chain = self.authorities.chain(
            bundles.chain_root_of_bundle(record, bundle_format), Concept.CERTIFICATE
        )
        return bundles.build_bundle(record, chain, bundle_format, password)

    def private_key(self, fqdn: str, serial: str | None = None) -> str:
        return bundles.leaf_private_key(self._generation(fqdn, serial))

    def _generation(self, fqdn: str, serial: str | None) -> CertificateRecord:
        """The current generation, or the one with `serial`."""
        if serial is None:
            return self._store.get_certificate(fqdn)
        for record in self._store.list_generations(fqdn):
            if record.serial == serial:
                return record
        raise NotFound(f"{fqdn} has no generation with serial {serial}", Concept.SERIAL)

    # AWS IoT Core ---------------------------------------------------------------------------

    def aws_iot_verification_certificate(self, fqdn: str, code: str) -> VerificationCertificate:
        """For registering the CA with AWS IoT by hand (see chalicelib.iot_onboarding)."""
        return self._iot.verification_certificate(fqdn, code)

    def register_with_aws_iot(self, fqdn: str, request: IotCaRequest) -> IotCaRegistered:
        return self._iot.register_ca(fqdn, request)

    # Events -------------------------------------------------------------------------------

    def record_event(self, detail_type: str, detail: dict[str, Any]) -> bool:
        """The inventory handler: records the inventory, and a revocation in AWS IoT too. Both
        are idempotent, so a replayed event changes nothing more."""
        event = parse_event(detail_type, detail)
        changed = self.inventory_keeper.record([event]) == 1
        if isinstance(event, CertificateRevoked):
            self._iot.forward_revocation(event)
        return changed

    def record_events(self, events: Sequence[CertificateEvent]) -> int:
        """Locally, every event's handlers in process: the inventory, then a CA revocation's
        walk down to AWS IoT (which has nothing to do where there is no AWS IoT)."""
        changed = self.inventory_keeper.record(events)
        for event in events:
            if isinstance(event, CertificateExpiring):  # kept in the log
                audit_notice(event)
            if isinstance(event, CertificateRevoked):
                self._iot.forward_revocation(event)
            self.cascade(event)
        return changed

    def cascade(self, event: CertificateEvent, time_is_up: TimeIsUp = never) -> Cursor | None:
        """The cascade handler: a CA's revocation carried to every certificate AWS IoT registered
        below it, and a deletion's removal from AWS IoT (chalicelib.cascade); when time is up,
        the rest goes on in a new event."""
        if isinstance(event, CertificateDeleted):
            left = self._iot_removal.run(event, time_is_up)
            if left is not None:
                self._announce([left])
            return None
        if isinstance(event, CascadeEvent):
            started = event
        elif isinstance(event, CertificateRevoked) and _revokes_a_ca(event):
            started = CascadeEvent(
                event.fqdn, event.cert_type, self._cascade.start(event.fqdn).to_dict()
            )
        else:
            return None
        rest = self._cascade.run(Cursor.from_dict(started.cursor), time_is_up)
        if rest is not None:
            self._announce([replace(started, cursor=rest.to_dict())])
        return rest

    def cascade_detail(
        self, detail_type: str, detail: dict[str, Any], time_is_up: TimeIsUp = never
    ) -> Cursor | None:
        return self.cascade(parse_event(detail_type, detail), time_is_up)

    @property
    def store(self) -> CertificateStore:
        """For the operators' commands (chalicelib.fsck) and the benchmarks."""
        return self._store

    @property
    def inventory(self) -> Inventory:
        return self._inventory

    def missing_inventory_items(self) -> list[str]:
        """FQDNs of stored certificates that the inventory does not list."""
        return self.inventory_keeper.missing_items()

    def uncovered_generations(self) -> list[tuple[str, str]]:
        """(FQDN, serial) of each generation of a revoked certificate that no revocation covers:
        left by a renewal that stopped between its write and its look (a crash)."""
        uncovered = []
        for filed in self._whole_certificate_revocations():
            try:
                generations = list(revocation.uncovered(self._store, filed))
            except (NotFound, CorruptDocument):  # make fsck names a corrupt one
                continue
            uncovered += [(filed.fqdn, generation.serial) for generation in generations]
        return sorted(uncovered)

    def orphaned_certificates(self) -> list[tuple[str, str]]:
        """(FQDN, its CA) of each stored certificate whose CA was deleted: issued in the instant
        its CA was deleted, on AWS with its `created` event late (chalicelib.deletion). Revoked
        with its CA; `DELETE` of it by name removes it."""
        stored: dict[str, bool] = {}
        found = []
        for record in self._store.iter_certificates(on_corrupt=lambda corrupt: None):
            parent = record.parent_fqdn
            if parent == ROOT_PARENT:
                continue
            if parent not in stored:
                stored[parent] = self._store.exists(parent)
            if not stored[parent]:
                found.append((record.fqdn, parent))
        return sorted(found)

    def held_key_problems(self) -> list[str]:
        """What is wrong with the CA keys that key stores hold: a CA whose key its store does not
        have (or has another one), and a key of this stage in a store that lists its keys
        (PKCS#11) which no CA holds (made for a CA whose write never happened)."""
        problems, held = [], set()
        for record in self._store.iter_certificates(on_corrupt=lambda corrupt: None):
            if record.key_store == FILE_KEY:
                continue
            held.add((record.key_store, record.key_id))
            try:
                self.authorities.get(record.fqdn, Concept.CERTIFICATE)
            except (StorageError, InvalidRequest) as err:
                problems.append(f"CA {record.fqdn}: {err.message}")
        for name, key_store in self._key_stores.items():
            if isinstance(key_store, ListsKeys):
                for key_id in sorted(key_store.key_ids()):
                    if (name, key_id) not in held:
                        problems.append(f"key {key_id} in {name} is no CA's")
        return problems

    def reconcile_inventory(self) -> int:
        """Cover what a crashed renewal left unrevoked, then add missing inventory items and
        statuses from the store; the number changed."""
        covered = 0
        for filed in self._whole_certificate_revocations():
            with contextlib.suppress(NotFound, CorruptDocument):  # make fsck names those
                covered += len(revocation.cover_generations(self._store, filed, self.clock()))
        return covered + self.inventory_keeper.reconcile(self._importer.find_imported)

    def _whole_certificate_revocations(self) -> Iterator[RevocationRecord]:
        """The filed revocations of whole certificates (not of one generation); a corrupt one is
        make fsck's to name."""
        for filed in self._store.iter_revocations(on_corrupt=lambda corrupt: None):
            if not filed.generation_only:
                yield filed


def _revokes_a_ca(event: CertificateRevoked) -> bool:
    """A CA revoked as a whole (not one generation of it superseded by a renewal)."""
    if event.generation_only or not event.cert_type:
        return False
    return policy_for(CertType(event.cert_type)).signs_certificates


def _required(value: str | None, concept: Concept = Concept.NAME) -> str:
    if value is None:  # the API refuses a request without it first
        raise InvalidRequest(concept, "is required")
    return value

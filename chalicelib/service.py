"""Use cases: issue, fetch and list certificates, and keep the inventory.

Depends on `pki` and the ports only. CA material is immutable once written (objects are written
once), so each CA's certificate and decrypted key are loaded once per process and cached; whether
a CA is revoked is asked of the store (see `authority`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from chalicelib import bundles, pki, revocation
from chalicelib.audit import audit, audit_issued
from chalicelib.authority import Authority, AuthorityCache
from chalicelib.devices import DeviceIssuer
from chalicelib.errors import AlreadyExists, InvalidRequest, NotFound
from chalicelib.events import CertificateCreated, CertificateEvent, CertificateRevoked
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
    BulkTerms,
    DeviceSigner,
    InProcessSigner,
    KeyMaterial,
    build_record,
    device_orders,
    validity_for,
)
from chalicelib.model import (
    CA_AND_SERVER_KEY_TYPES,
    ROOT_PARENT,
    CertificatePage,
    CertificateRecord,
    CertType,
    ChildFilter,
    IssuedCertificate,
    IssueRequest,
    KeyType,
    RenewRequest,
    RevocationRecord,
    iso_utc,
    utc_now,
)
from chalicelib.names import is_ip_address, is_under, proper_suffixes
from chalicelib.paging import decode_page_token, encode_page_token
from chalicelib.ports.importer import CertificateImporter, CertificateImportError
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.iot_registry import IotRegistry
from chalicelib.ports.publisher import EventDeliveryError, EventPublisher
from chalicelib.ports.store import CertificateStore
from chalicelib.renewal import Renewer

logger = logging.getLogger(__name__)
ProfileFor = Callable[[KeyType], pki.Profile]


@dataclass(frozen=True)
class CertificateDetails:
    """A stored certificate with its revocation, if any (GET one)."""

    record: CertificateRecord
    revocation: RevocationRecord | None


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
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._publisher = publisher
        self._importer = importer
        self._passphrase = ca_key_passphrase
        self.clock = clock
        self.authorities = AuthorityCache(store, ca_key_passphrase, revocation_recheck)
        self._public_base_url = public_base_url
        self.inventory_keeper = InventoryKeeper(store, inventory, clock)
        self._devices = DeviceIssuer(
            store, self.authorities, signer or InProcessSigner(), self._announce, clock
        )
        self._renewer = Renewer(
            store, inventory, importer, self.authorities, self._announce, clock, self._crl_url
        )
        self._iot = IotOnboarding(iot_registry, self.authorities, clock, iot_device_policy_name)

    # Issuance -----------------------------------------------------------------------------

    def create_root(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn, "fqdn")
        self._refuse_existing(fqdn)
        return self._issue(request, fqdn, None, lambda _: pki.root_profile(), fqdn)

    def create_intermediate(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn, "fqdn")
        parent = self._resolve_parent(fqdn, request.parent_fqdn, self.clock())
        if parent.path_length is not None:
            if parent.path_length == 0:
                raise InvalidRequest(
                    "parent_fqdn",
                    f"CA {parent.fqdn} has path_length 0 and may not issue an intermediate CA",
                )
            if request.path_length > parent.path_length - 1:
                raise InvalidRequest(
                    "path_length",
                    f"must be at most {parent.path_length - 1} under {parent.fqdn} "
                    f"(its path_length is {parent.path_length})",
                )
        self._refuse_existing(fqdn)
        profile = pki.intermediate_profile(request.path_length, self._crl_url(parent))
        return self._issue(request, fqdn, parent, lambda _: profile, fqdn)

    def create_server(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn, "fqdn")
        parent = self._resolve_parent(fqdn, request.parent_fqdn, self.clock())
        # No existence check first: the write-once put refuses a taken FQDN before the ACM
        # import, and skipping the lookup keeps issuance within three AWS calls.
        ips = list(dict.fromkeys(name for name in request.sans if is_ip_address(name)))
        dns_names = list(dict.fromkeys([fqdn, *(n for n in request.sans if n not in ips)]))
        crl_url = self._crl_url(parent)
        return self._issue(
            request,
            fqdn,
            parent,
            lambda key_type: pki.server_profile(key_type, dns_names, ips, crl_url),
            fqdn,
        )

    def create_device(self, request: IssueRequest) -> IssuedCertificate:
        return self.create_devices(request)[0]

    def create_devices(self, request: IssueRequest) -> list[IssuedCertificate]:
        """One device certificate, or a bulk of them (`count` or `csrs`) in one request (see
        chalicelib.devices)."""
        now = self.clock()  # whether the CA is revoked is asked right before storing
        parent_fqdn = _required(request.parent_fqdn, "parent_fqdn")
        parent = self.authorities.current(parent_fqdn, "parent_fqdn", now)
        validity = validity_for(now, CertType.CLIENT, request.validity_days, parent)
        orders = device_orders(request, parent.fqdn)
        if request.aws_iot is not None and request.aws_iot.register:
            self._iot.refuse_unless_available()  # before anything is stored
            refuse_unaccepted(parent)
            key_types = [order.material.key_type if order.material else request.key_type
                         for order in orders]  # fmt: skip
            refuse_ed25519(key_types, "csr" if request.csr or request.csrs else "key_type")
        terms = BulkTerms(
            parent.signing, validity, request.subject, request.key_type, self._crl_url(parent)
        )
        issued = self._devices.issue(parent, terms, orders, now)
        if request.aws_iot is not None and request.aws_iot.register:
            return self._iot.register_devices(parent, issued, request.aws_iot.thing)
        return issued

    def renew(self, fqdn: str, request: RenewRequest) -> IssuedCertificate:
        """A new generation of the certificate (see chalicelib.renewal)."""
        return self._renewer.renew(fqdn, request)

    def _issue(
        self,
        request: IssueRequest,
        fqdn: str,
        parent: Authority | None,
        profile_for: ProfileFor,
        common_name: str,
    ) -> IssuedCertificate:
        now = self.clock()
        validity = validity_for(now, request.cert_type, request.validity_days, parent)
        if request.csr is not None:
            material = KeyMaterial.from_csr(request.csr, CA_AND_SERVER_KEY_TYPES, "csr")
        else:
            material = KeyMaterial.generate(request.key_type)
        issued = self._sign(
            request, fqdn, parent, profile_for, common_name, now, validity, material
        )
        if parent is not None:  # asked right before storing: a key can take seconds to make
            self.authorities.refuse_if_revoked(parent, self.clock(), "parent_fqdn")
        self._store.put_certificate(issued.record)
        audit_issued(issued.record)
        if request.cert_type is CertType.SERVER and issued.private_key_pem is not None:
            issued = replace(
                issued,
                record=self._import_server_certificate(issued.record, issued.private_key_pem),
            )
        self._announce([CertificateCreated.from_record(issued.record)])
        return issued

    def _sign(
        self,
        request: IssueRequest,
        fqdn: str,
        parent: Authority | None,
        profile_for: ProfileFor,
        common_name: str,
        now: datetime,
        validity: pki.Validity,
        material: KeyMaterial,
    ) -> IssuedCertificate:
        certificate = pki.sign_certificate(
            profile_for(material.key_type),
            pki.build_subject(common_name, request.subject),
            material.public_key,
            validity,
            parent.signing if parent else None,
            self_signing_key=material.private_key,
        )
        leaf_key = None
        stored_key = None
        if material.private_key is not None:
            leaf_key = pki.private_key_to_pem(material.private_key)
            is_ca = request.cert_type.is_ca
            stored_key = (
                pki.private_key_to_pem(material.private_key, self._passphrase)
                if is_ca
                else leaf_key
            )
            leaf_key = None if is_ca else leaf_key
        record = build_record(
            fqdn=fqdn,
            cert_type=request.cert_type,
            parent=parent,
            certificate=certificate,
            key_type=material.key_type,
            stored_private_key_pem=stored_key,
            now=now,
        )
        return IssuedCertificate(record=record, private_key_pem=leaf_key)

    def _import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str
    ) -> CertificateRecord:
        """Import after the store write, so a taken FQDN (409) never reaches ACM.

        The ARN travels in the `created` event to the inventory, where GET finds it. A failed
        import is logged; the certificate and its one-time key are still returned. A server
        certificate issued from a CSR is not imported: ACM needs the private key.
        """
        try:
            arn = self._importer.import_server_certificate(record, private_key_pem)
        except CertificateImportError:
            logger.exception("server certificate %s is stored but not imported", record.fqdn)
            return record
        return replace(record, acm_certificate_arn=arn)

    def _announce(self, events: Sequence[CertificateEvent]) -> None:
        """Publish; a delivery failure is logged, the stored certificates stand."""
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

    # CA lookup ----------------------------------------------------------------------------

    def _refuse_existing(self, fqdn: str) -> None:
        """A cheap 409 before generating a CA key (the write-once put would refuse it anyway)."""
        if self._store.exists(fqdn):
            raise AlreadyExists(
                f"fqdn: {fqdn} already exists; an existing certificate is never replaced"
            )

    def _resolve_parent(self, fqdn: str, parent_fqdn: str | None, now: datetime) -> Authority:
        """The given parent (which must lie above `fqdn`), else the closest existing CA above it."""
        if parent_fqdn is not None:
            if not is_under(fqdn, parent_fqdn):
                raise InvalidRequest("fqdn", f"{fqdn} must lie under its parent CA {parent_fqdn}")
            return self.authorities.current(parent_fqdn, "parent_fqdn", now)
        for candidate in proper_suffixes(fqdn):
            try:
                return self.authorities.current(candidate, "parent_fqdn", now)
            except (NotFound, InvalidRequest):
                continue
        raise NotFound(f"parent_fqdn: no CA exists above {fqdn}; create one or give parent_fqdn")

    # Queries ------------------------------------------------------------------------------

    def get_certificate(self, fqdn: str, serial: str | None = None) -> CertificateDetails:
        """The current generation (or the one with `serial`) and its revocation; for a server,
        with its ACM ARN."""
        if serial is None:
            record, is_current = self._store.get_certificate(fqdn), True
        else:
            generations = self._store.list_generations(fqdn)
            record = _with_serial(generations, serial)
            is_current = record is generations[-1]
        if record.cert_type is CertType.SERVER and record.acm_certificate_arn is None:
            item = self._inventory.find(record.fqdn, record.parent_fqdn)
            if item is not None and item.acm_certificate_arn:
                record = replace(record, acm_certificate_arn=item.acm_certificate_arn)
        return CertificateDetails(record, revocation.revocation_of(self._store, record, is_current))

    def history(self, fqdn: str) -> list[CertificateDetails]:
        """Every generation, oldest first, each with its revocation (if any)."""
        generations = self._store.list_generations(fqdn)
        certificate_revocation = self._store.get_revocation(generations[0].parent_fqdn, fqdn)
        details = []
        for record in generations:  # the certificate's revocation is read once, above
            if certificate_revocation and record.serial in certificate_revocation.revoked_serials:
                revoked: RevocationRecord | None = certificate_revocation
            else:
                revoked = self._store.get_generation_revocation(
                    record.parent_fqdn, fqdn, record.serial
                )
            details.append(CertificateDetails(record, revoked))
        return details

    def list_certificates(
        self,
        parent_fqdn: str | None,
        limit: int,
        next_token: str | None,
        expiring_within_days: int | None = None,
        status: str | None = None,
    ) -> CertificatePage:
        """Children of a CA, or the roots when no parent is given, ordered by FQDN."""
        parent_key = parent_fqdn or ROOT_PARENT
        after = decode_page_token(next_token, parent_key) if next_token else None
        if parent_fqdn is not None and not self._store.exists(parent_fqdn):
            raise NotFound(f"parent: certificate {parent_fqdn} not found")
        until = None
        if expiring_within_days is not None:
            until = iso_utc(self.clock() + timedelta(days=expiring_within_days))
        page = self._inventory.list_children(parent_key, limit, after, ChildFilter(until, status))
        token = encode_page_token(parent_key, page.last_fqdn) if page.last_fqdn else None
        return CertificatePage(items=page.items, next_token=token)

    # Revocation and bundles ---------------------------------------------------------------

    def revoke(self, fqdn: str, reason: str) -> revocation.Revoked:
        """Revoke; issuance under a revoked CA is refused from then on (409)."""
        revoked, event = revocation.revoke(
            self._store, self._inventory, self.authorities, self.clock(), fqdn, reason
        )
        audit("revoked", revoked.record, reason=reason)
        self._announce([event])
        return revoked

    def certificate_revocation_list(self, ca_fqdn: str) -> x509.CertificateRevocationList:
        return revocation.certificate_revocation_list(
            self._store, self.authorities, self.clock(), ca_fqdn
        )

    def bundle(
        self, fqdn: str, bundle_format: str, password: str | None, serial: str | None = None
    ) -> bundles.Bundle:
        return bundles.build_bundle(self._generation(fqdn, serial), bundle_format, password)

    def private_key(self, fqdn: str, serial: str | None = None) -> str:
        return bundles.leaf_private_key(self._generation(fqdn, serial))

    def _generation(self, fqdn: str, serial: str | None) -> CertificateRecord:
        """The current generation, or the one with `serial`."""
        if serial is None:
            return self._store.get_certificate(fqdn)
        return _with_serial(self._store.list_generations(fqdn), serial)

    # AWS IoT Core ---------------------------------------------------------------------------

    def aws_iot_verification_certificate(self, fqdn: str, code: str) -> VerificationCertificate:
        """For registering the CA with AWS IoT by hand (see chalicelib.iot_onboarding)."""
        return self._iot.verification_certificate(fqdn, code)

    def register_with_aws_iot(self, fqdn: str, request: IotCaRequest) -> IotCaRegistered:
        return self._iot.register_ca(fqdn, request)

    # Inventory ----------------------------------------------------------------------------

    def record_event(self, detail_type: str, detail: dict[str, Any]) -> bool:
        """The event handler: records the inventory, and a revocation in AWS IoT too. Both are
        idempotent, so a replayed event changes nothing more."""
        event = parse_event(detail_type, detail)
        changed = self.inventory_keeper.record([event]) == 1
        if isinstance(event, CertificateRevoked):
            self._iot.forward_revocation(event)
        return changed

    def missing_inventory_items(self) -> list[str]:
        """FQDNs of stored certificates that the inventory does not list."""
        return self.inventory_keeper.missing_items()

    def reconcile_inventory(self) -> int:
        """Add missing inventory items and statuses from the store; the number changed."""
        return self.inventory_keeper.reconcile(self._importer.find_imported)


def _with_serial(generations: list[CertificateRecord], serial: str) -> CertificateRecord:
    for record in generations:
        if record.serial == serial:
            return record
    raise NotFound(f"serial: {generations[0].fqdn} has no generation with serial {serial}")


def _required(value: str | None, field: str) -> str:
    if value is None:
        raise InvalidRequest(field, "is required")
    return value

"""Use cases: issue, fetch and list certificates, and keep the inventory.

Depends on `pki` and the ports only. CA material is immutable once written (objects are written
once), so each CA's certificate and decrypted key are loaded once per process and cached.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib import pki
from chalicelib.authority import Authority, AuthorityCache
from chalicelib.errors import AlreadyExists, InvalidRequest, NotFound
from chalicelib.events import CertificateCreated, EventDeliveryError, EventPublisher
from chalicelib.importer import CertificateImporter, CertificateImportError
from chalicelib.inventory import Inventory
from chalicelib.model import (
    DEFAULT_VALIDITY_DAYS,
    ROOT_PARENT,
    CertificatePage,
    CertificateRecord,
    CertType,
    IssuedCertificate,
    IssueRequest,
    iso_utc,
)
from chalicelib.names import device_fqdn, is_under, proper_suffixes
from chalicelib.paging import decode_page_token, encode_page_token
from chalicelib.store import CertificateStore

logger = logging.getLogger(__name__)

BACKDATE = timedelta(minutes=5)
"""not_before is set this far in the past so that slightly slow clocks accept a new certificate."""


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class CertificateService:
    def __init__(
        self,
        store: CertificateStore,
        inventory: Inventory,
        publisher: EventPublisher,
        importer: CertificateImporter,
        ca_key_passphrase: bytes | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._publisher = publisher
        self._importer = importer
        self._passphrase = ca_key_passphrase
        self._clock = clock
        self._authorities = AuthorityCache(store, ca_key_passphrase)

    # Issuance -----------------------------------------------------------------------------

    def create_root(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn, "fqdn")
        self._refuse_existing(fqdn)
        return self._issue(request, fqdn, None, pki.root_profile(), common_name=fqdn)

    def create_intermediate(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn, "fqdn")
        parent = self._resolve_parent(fqdn, request.parent_fqdn)
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
        profile = pki.intermediate_profile(request.path_length)
        return self._issue(request, fqdn, parent, profile, common_name=fqdn)

    def create_server(self, request: IssueRequest) -> IssuedCertificate:
        fqdn = _required(request.fqdn, "fqdn")
        parent = self._resolve_parent(fqdn, request.parent_fqdn)
        # No existence check first: the write-once put refuses a taken FQDN before the ACM
        # import, and skipping the lookup keeps issuance within three AWS calls.
        ip_addresses = [name for name in request.sans if _is_ip_address(name)]
        dns_names = list(dict.fromkeys([fqdn, *(n for n in request.sans if n not in ip_addresses)]))
        profile = pki.server_profile(request.key_type, dns_names, ip_addresses)
        return self._issue(request, fqdn, parent, profile, common_name=fqdn)

    def create_device(self, request: IssueRequest) -> IssuedCertificate:
        parent = self._authorities.get(_required(request.parent_fqdn, "parent_fqdn"), "parent_fqdn")
        device_id = str(uuid.uuid4())
        fqdn = device_fqdn(device_id, parent.fqdn)
        profile = pki.device_profile(request.key_type, fqdn)
        return self._issue(
            request, fqdn, parent, profile, common_name=device_id, device_id=device_id
        )

    def _issue(
        self,
        request: IssueRequest,
        fqdn: str,
        parent: Authority | None,
        profile: pki.Profile,
        common_name: str,
        device_id: str | None = None,
    ) -> IssuedCertificate:
        now = self._clock()
        validity = self._validity(now, request, parent)
        private_key = pki.generate_private_key(request.key_type)
        certificate = pki.sign_certificate(
            profile,
            pki.build_subject(common_name, request.subject),
            private_key.public_key(),
            validity,
            parent.signing if parent else None,
            self_signing_key=private_key,
        )
        is_leaf = not request.cert_type.is_ca
        private_key_pem = pki.private_key_to_pem(private_key)
        record = CertificateRecord(
            fqdn=fqdn,
            cert_type=request.cert_type,
            parent_fqdn=parent.fqdn if parent else ROOT_PARENT,
            serial=pki.serial_hex(certificate),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            key_type=request.key_type,
            fingerprint_sha256=pki.fingerprint_sha256(certificate),
            certificate_pem=pki.certificate_to_pem(certificate),
            chain_pem=parent.chain_for_children if parent else "",
            private_key_pem=(
                private_key_pem
                if is_leaf
                else pki.private_key_to_pem(private_key, self._passphrase)
            ),
            created_at=now,
            device_id=device_id,
        )
        self._store.put_certificate(record)
        if request.cert_type is CertType.SERVER:
            record = self._import_server_certificate(record, private_key_pem)
        self._announce(record)
        return IssuedCertificate(
            record=record, private_key_pem=private_key_pem if is_leaf else None
        )

    def _validity(
        self, now: datetime, request: IssueRequest, parent: Authority | None
    ) -> pki.Validity:
        default_days = DEFAULT_VALIDITY_DAYS[request.cert_type]
        days = request.validity_days
        if parent is None:
            return pki.Validity(now - BACKDATE, now + timedelta(days=days or default_days))
        limit = parent.signing.certificate.not_valid_after_utc
        if limit <= now:
            raise InvalidRequest("parent_fqdn", f"CA {parent.fqdn} expired on {iso_utc(limit)}")
        max_days = (limit - now) // timedelta(days=1)
        if days is None:
            return pki.Validity(now - BACKDATE, min(now + timedelta(days=default_days), limit))
        if days > max_days:
            raise InvalidRequest(
                "validity_days",
                f"must be at most {max_days}: the issuing CA {parent.fqdn} is valid until "
                f"{iso_utc(limit)}",
            )
        return pki.Validity(now - BACKDATE, now + timedelta(days=days))

    def _import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str
    ) -> CertificateRecord:
        """Import after the store write, so a taken FQDN (409) never reaches ACM.

        The ARN travels in the `created` event to the inventory, where GET finds it. A failed
        import is logged; the certificate and its one-time key are still returned.
        """
        try:
            arn = self._importer.import_server_certificate(record, private_key_pem)
        except CertificateImportError:
            logger.exception("server certificate %s is stored but not imported", record.fqdn)
            return record
        return replace(record, acm_certificate_arn=arn)

    def _announce(self, record: CertificateRecord) -> None:
        """Publish `created`; a delivery failure is logged, the stored certificate stands."""
        try:
            self._publisher.publish_created(CertificateCreated.from_record(record))
        except EventDeliveryError:
            logger.exception(
                "created event for %s was not delivered; the certificate is stored and "
                "reconcile_inventory() restores the inventory item",
                record.fqdn,
            )

    # CA lookup ----------------------------------------------------------------------------

    def _refuse_existing(self, fqdn: str) -> None:
        """A cheap 409 before generating a CA key (the write-once put would refuse it anyway)."""
        if self._store.exists(fqdn):
            raise AlreadyExists(
                f"fqdn: {fqdn} already exists; an existing certificate is never replaced"
            )

    def _resolve_parent(self, fqdn: str, parent_fqdn: str | None) -> Authority:
        """The given parent (which must lie above `fqdn`), else the closest existing CA above it."""
        if parent_fqdn is not None:
            if not is_under(fqdn, parent_fqdn):
                raise InvalidRequest("fqdn", f"{fqdn} must lie under its parent CA {parent_fqdn}")
            return self._authorities.get(parent_fqdn, "parent_fqdn")
        for candidate in proper_suffixes(fqdn):
            try:
                return self._authorities.get(candidate, "parent_fqdn")
            except (NotFound, InvalidRequest):
                continue
        raise NotFound(f"parent_fqdn: no CA exists above {fqdn}; create one or give parent_fqdn")

    # Queries ------------------------------------------------------------------------------

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        """The stored certificate; for a server, with the ACM ARN the inventory recorded."""
        record = self._store.get_certificate(fqdn)
        if record.cert_type is CertType.SERVER and record.acm_certificate_arn is None:
            item = self._inventory.find(record.fqdn, record.parent_fqdn)
            if item is not None and item.acm_certificate_arn:
                record = replace(record, acm_certificate_arn=item.acm_certificate_arn)
        return record

    def list_certificates(
        self, parent_fqdn: str | None, limit: int, next_token: str | None
    ) -> CertificatePage:
        """Children of a CA, or the roots when no parent is given, ordered by FQDN."""
        parent_key = parent_fqdn or ROOT_PARENT
        after = decode_page_token(next_token, parent_key) if next_token else None
        if parent_fqdn is not None and not self._store.exists(parent_fqdn):
            raise NotFound(f"parent: certificate {parent_fqdn} not found")
        page = self._inventory.list_children(parent_key, limit, after)
        token = encode_page_token(parent_key, page.last_fqdn) if page.last_fqdn else None
        return CertificatePage(items=page.items, next_token=token)

    # Inventory ----------------------------------------------------------------------------

    def record_created_event(self, detail: dict[str, Any]) -> bool:
        """The inventory handler: idempotent, so a replayed event leaves one item."""
        event = CertificateCreated.from_detail(detail)
        return self._inventory.record_certificate(event.to_inventory_item(iso_utc(self._clock())))

    def reconcile_inventory(self) -> int:
        """Add the inventory items missing for stored certificates; the number added."""
        added = 0
        for record in self._store.iter_certificates():
            if not self._inventory.contains(record.fqdn, record.parent_fqdn):
                item = CertificateCreated.from_record(record).to_inventory_item(
                    iso_utc(record.created_at)
                )
                added += self._inventory.record_certificate(item)
        return added


def _required(value: str | None, field: str) -> str:
    if value is None:
        raise InvalidRequest(field, "is required")
    return value


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True

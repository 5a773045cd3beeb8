"""Renewal: a new generation of a certificate, beside the ones before it.

The new generation keeps the FQDN, the subject, the names and the issuer, and gets a new serial and
validity, with a new key (generated, or the caller's CSR) or the same one. A CA is always renewed
with its own key (same subject key identifier), so that what it issued verifies under the old and
the new CA certificate alike. The new generation is written create-only (`store`), so of two
renewals of the same generation one is stored and the other is a 409 naming the winner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib import pki
from chalicelib.audit import audit
from chalicelib.authority import Authority, AuthorityCache
from chalicelib.errors import AlreadyExists, Conflict, InvalidRequest
from chalicelib.events import CertificateEvent, CertificateRenewed
from chalicelib.issuance import KeyMaterial, build_record, validity_for
from chalicelib.model import (
    CA_AND_SERVER_KEY_TYPES,
    ROOT_PARENT,
    CertificateRecord,
    CertType,
    IssuedCertificate,
    KeyType,
    RenewRequest,
)
from chalicelib.ports.importer import CertificateImporter, CertificateImportError
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.store import CertificateStore
from chalicelib.revocation import revoke_generation

logger = logging.getLogger(__name__)
SUPERSEDED = "superseded"


@dataclass(frozen=True)
class _NewKey:
    material: KeyMaterial
    stored_pem: str | None  # what the record keeps (a CA's key as stored: encrypted if it was)
    returned_pem: str | None  # a leaf's key, returned once; None for a CSR's and a CA's


class Renewer:
    def __init__(
        self,
        store: CertificateStore,
        inventory: Inventory,
        importer: CertificateImporter,
        authorities: AuthorityCache,
        announce: Callable[[Sequence[CertificateEvent]], None],
        clock: Callable[[], datetime],
        crl_url: Callable[[Authority], str | None],
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._importer = importer
        self._authorities = authorities
        self._announce = announce
        self._clock = clock
        self._crl_url = crl_url

    def renew(self, fqdn: str, request: RenewRequest) -> IssuedCertificate:
        now = self._clock()
        current = self._store.get_certificate(fqdn)
        if request.serial is not None and request.serial != current.serial:
            raise Conflict(
                f"serial: {request.serial} is not the current generation of {fqdn}: generation "
                f"{current.generation} (serial {current.serial}) is; nothing was written"
            )
        parent = None
        if current.parent_fqdn != ROOT_PARENT:
            parent = self._authorities.current(current.parent_fqdn, "parent_fqdn", now)
        validity = validity_for(now, current.cert_type, request.validity_days, parent)
        new_key = self._new_key(current, request)
        certificate = pki.load_certificate(current.certificate_pem)
        renewed_certificate = pki.sign_certificate(
            pki.renewal_profile(
                certificate,
                new_key.material.key_type,
                self._crl_url(parent) if parent is not None else None,
            ),
            certificate.subject,
            new_key.material.public_key,
            validity,
            parent.signing if parent is not None else None,
            self_signing_key=new_key.material.private_key,
        )
        record = build_record(
            fqdn=fqdn,
            cert_type=current.cert_type,
            parent=parent,
            certificate=renewed_certificate,
            key_type=new_key.material.key_type,
            stored_private_key_pem=new_key.stored_pem,
            now=now,
            device_id=current.device_id,
            generation=current.generation + 1,
            previous_serial=current.serial,
            acm_certificate_arn=self._acm_certificate_arn(current),
        )
        self._store_generation(record, current, parent)
        audit("renewed", record, generation=record.generation, previous_serial=current.serial)
        if request.revoke_previous:
            revoke_generation(self._store, current, SUPERSEDED, now)
            audit("revoked", current, reason=SUPERSEDED, generation=current.generation)
        if record.cert_type.is_ca:
            self._authorities.renewed(fqdn)
        if record.cert_type is CertType.SERVER and new_key.returned_pem is not None:
            record = self._import(record, new_key.returned_pem)
        self._announce([CertificateRenewed.from_record(record)])
        return IssuedCertificate(record, new_key.returned_pem)

    def _refuse_if_revoked(self, current: CertificateRecord) -> None:
        if self._store.is_revoked(current.parent_fqdn, current.fqdn):
            raise Conflict(
                f"certificate: {current.fqdn} is revoked; a revoked certificate is not renewed "
                "(issue a new one)"
            )

    def _new_key(self, current: CertificateRecord, request: RenewRequest) -> _NewKey:
        if current.cert_type.is_ca:
            return self._ca_key(current, request)
        if request.reuse_key:
            if current.private_key_pem is None:
                raise InvalidRequest(
                    "reuse_key",
                    f"{current.fqdn} was issued from a CSR, so the service does not hold its key; "
                    "renew it with a new csr",
                )
            key = pki.load_trusted_private_key(current.private_key_pem, None)
            material = KeyMaterial(key.public_key(), current.key_type, key)
            return _NewKey(material, current.private_key_pem, current.private_key_pem)
        allowed = CA_AND_SERVER_KEY_TYPES
        if current.cert_type is CertType.CLIENT:
            allowed = frozenset(KeyType)
        if request.csr is not None:
            return _NewKey(KeyMaterial.from_csr(request.csr, allowed, "csr"), None, None)
        key_type = request.key_type or current.key_type
        if key_type not in allowed:
            raise InvalidRequest("key_type", f"{key_type.value} is for device certificates only")
        key = pki.generate_private_key(key_type)
        key_pem = pki.private_key_to_pem(key)
        return _NewKey(KeyMaterial(key.public_key(), key_type, key), key_pem, key_pem)

    def _ca_key(self, current: CertificateRecord, request: RenewRequest) -> _NewKey:
        """A CA keeps its key: what it issued must verify under the renewed certificate."""
        for field, given in (
            ("csr", request.csr is not None),
            ("key_type", request.key_type is not None),
            ("reuse_key", request.reuse_key is False),
        ):
            if given:
                raise InvalidRequest(
                    field,
                    f"{current.fqdn} is a CA, which is renewed with its own key only (so that "
                    "what it issued keeps verifying); to move to a new key, create a new CA",
                )
        authority = self._authorities.get(current.fqdn, "certificate")
        key = authority.signing.private_key
        material = KeyMaterial(key.public_key(), current.key_type, key)
        return _NewKey(material, current.private_key_pem, None)

    def _acm_certificate_arn(self, current: CertificateRecord) -> str | None:
        """Where the current generation was imported: its record has the ARN from the second
        generation on; the first's is in the inventory (its `created` event carried it), or,
        while that event is on its way, found in ACM by the certificate's fingerprint."""
        if current.cert_type is not CertType.SERVER or current.acm_certificate_arn:
            return current.acm_certificate_arn
        item = self._inventory.find(current.fqdn, current.parent_fqdn)
        if item is not None and item.acm_certificate_arn:
            return item.acm_certificate_arn
        return self._importer.find_imported([current]).get(current.fqdn)

    def _store_generation(
        self, record: CertificateRecord, current: CertificateRecord, parent: Authority | None
    ) -> None:
        """Create-only: a concurrent renewal of the same generation that stored first wins.
        Whether the certificate or its CA is revoked is asked right before, as for an issuance
        (once: a renewal signs with an EC key in a millisecond)."""
        self._refuse_if_revoked(current)
        if parent is not None:
            self._authorities.refuse_if_revoked(parent, self._clock(), "parent_fqdn")
        try:
            self._store.put_certificate(record)
        except AlreadyExists as err:
            winner = self._store.get_generation(record.fqdn, record.generation)
            raise AlreadyExists(
                f"certificate: {record.fqdn} was renewed meanwhile: generation "
                f"{winner.generation} (serial {winner.serial}) is current; nothing was written"
            ) from err

    def _import(self, record: CertificateRecord, private_key_pem: str) -> CertificateRecord:
        """Into the same ACM ARN (a new one if the certificate had none: its first import
        failed); a failure is logged, the renewal stands."""
        try:
            arn = self._importer.import_server_certificate(record, private_key_pem)
        except CertificateImportError:
            logger.exception(
                "generation %d of %s is stored but not imported", record.generation, record.fqdn
            )
            return record
        return record if record.acm_certificate_arn else replace(record, acm_certificate_arn=arn)

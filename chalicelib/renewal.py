"""Renewal: a new generation of a certificate, beside the ones before it.

The new generation keeps the FQDN, the subject, the names and the issuer, and gets a new serial
and validity, with a new key (generated, or the caller's CSR) or the same one. A CA is always
renewed with its own key (same subject key identifier), so that what it issued verifies under
the old and the new CA certificate alike, and never to end before the generation it renews
(chalicelib.kinds). The new generation is stored by the one issuer (chalicelib.issuer): of two
renewals of the same generation one is stored and the other is a 409 naming the winner, and a
renewal racing a revocation of the certificate never leaves an unrevoked generation behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib import pki
from chalicelib.authority import Authority, AuthorityCache
from chalicelib.errors import CertificateIsRevoked, Concept, Conflict, InvalidRequest
from chalicelib.issuance import build_record, generated_key, key_from_csr, validity_for
from chalicelib.issuer import Issuer, Renewal, Signed
from chalicelib.kinds import KindPolicy, policy_for
from chalicelib.model import (
    FILE_KEY,
    ROOT_PARENT,
    CertificateRecord,
    CertType,
    IssuedCertificate,
    RenewRequest,
    iso_utc,
)
from chalicelib.ports.importer import CertificateImporter
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.signer import KeyMaterial
from chalicelib.ports.store import CertificateStore


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
        issuer: Issuer,
        clock: Callable[[], datetime],
        crl_url: Callable[[Authority], str | None],
        purged_after: timedelta | None = None,
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._importer = importer
        self._authorities = authorities
        self._issuer = issuer
        self._clock = clock
        self._crl_url = crl_url
        self._purged_after = purged_after

    def renew(self, fqdn: str, request: RenewRequest) -> IssuedCertificate:
        now = self._clock()
        current = self._store.get_certificate(fqdn)
        if request.serial is not None and request.serial != current.serial:
            raise Conflict(
                f"{request.serial} is not the current generation of {fqdn}: generation "
                f"{current.generation} (serial {current.serial}) is; nothing was written",
                Concept.SERIAL,
            )
        policy = policy_for(current.cert_type)
        if self._store.is_revoked(current.parent_fqdn, fqdn):  # refused before anything is signed
            raise CertificateIsRevoked(fqdn)
        self._refuse_if_purged_soon(current, now)
        parent = None
        if current.parent_fqdn != ROOT_PARENT:
            parent = self._authorities.current(current.parent_fqdn, Concept.ISSUER)
            self._authorities.refuse_if_revoked(parent, now, Concept.ISSUER)
        validity = validity_for(now, policy, request.validity_days, parent, renewing=current)
        new_key = self._new_key(current, policy, request)
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
            policy=policy,
            parent=parent,
            certificate=renewed_certificate,
            key_type=new_key.material.key_type,
            stored_private_key_pem=new_key.stored_pem,
            now=now,
            device_id=current.device_id,
            generation=current.generation + 1,
            previous_serial=current.serial,
            acm_certificate_arn=self._acm_certificate_arn(current, policy),
            key_store=current.key_store if policy.renewed_with_own_key else FILE_KEY,
            key_id=current.key_id if policy.renewed_with_own_key else None,
        )
        return self._issuer.issue(
            Signed(record, new_key.returned_pem), Renewal(current, request.revoke_previous)
        )

    def _refuse_if_purged_soon(self, current: CertificateRecord, now: datetime) -> None:
        """With PURGE_EXPIRED_AFTER_DAYS, a device expired longer than that is no longer
        renewed: the purge deletes it a day later, and must never meet a renewal of it."""
        if self._purged_after is None or current.cert_type != CertType.CLIENT:
            return
        if current.not_after + self._purged_after < now:
            days = self._purged_after.days
            raise Conflict(
                f"{current.fqdn} expired on {iso_utc(current.not_after)}, more than {days} days "
                f"ago (PURGE_EXPIRED_AFTER_DAYS={days}): it is not renewed, and is deleted "
                "soon; issue a new device certificate",
                Concept.CERTIFICATE,
            )

    def _new_key(
        self, current: CertificateRecord, policy: KindPolicy, request: RenewRequest
    ) -> _NewKey:
        if policy.renewed_with_own_key:
            return self._own_key(current, request)
        if request.reuse_key:
            if current.private_key_pem is None:
                raise InvalidRequest(
                    Concept.KEY_REUSE,
                    f"{current.fqdn} was issued from a CSR, so the service does not hold its key; "
                    "renew it with a new CSR",
                )
            key = pki.load_trusted_private_key(current.private_key_pem, None)
            material = KeyMaterial(key.public_key(), current.key_type, key)
            return _NewKey(material, current.private_key_pem, current.private_key_pem)
        if request.csr is not None:
            return _NewKey(key_from_csr(request.csr, policy), None, None)
        key_type = request.key_type or current.key_type
        if not policy.allows_key(key_type):
            raise InvalidRequest(Concept.KEY_TYPE, f"{key_type.value}: {policy.key_type_rule()}")
        material = generated_key(key_type)
        assert material.private_key is not None
        key_pem = pki.private_key_to_pem(material.private_key)
        return _NewKey(material, key_pem, key_pem)

    def _own_key(self, current: CertificateRecord, request: RenewRequest) -> _NewKey:
        """A CA keeps its key: what it issued must verify under the renewed certificate."""
        for concept, given in (
            (Concept.CSR, request.csr is not None),
            (Concept.KEY_TYPE, request.key_type is not None),
            (Concept.KEY_REUSE, request.reuse_key is False),
        ):
            if given:
                raise InvalidRequest(
                    concept,
                    f"{current.fqdn} is a CA, which is renewed with its own key only (so that "
                    "what it issued keeps verifying); to move to a new key, create a new CA",
                )
        authority = self._authorities.get(current.fqdn, Concept.CERTIFICATE)
        key = authority.signing.private_key
        material = KeyMaterial(key.public_key(), current.key_type, key)
        return _NewKey(material, current.private_key_pem, None)

    def _acm_certificate_arn(self, current: CertificateRecord, policy: KindPolicy) -> str | None:
        """Where the current generation was imported: its record has the ARN from the second
        generation on; the first's is in the inventory (its `created` event carried it), or,
        while that event is on its way, found in ACM by the certificate's fingerprint."""
        if not policy.imported_into_acm or current.acm_certificate_arn:
            return current.acm_certificate_arn
        item = self._inventory.find(current.fqdn, current.parent_fqdn)
        if item is not None and item.acm_certificate_arn:
            return item.acm_certificate_arn
        return self._importer.find_imported([current]).get(current.fqdn)

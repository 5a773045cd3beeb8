"""Loaded CAs, cached for the life of the process, and their revocation checked per issuance.

A CA's objects are written once and never replaced, so its certificate and decrypted key can be
kept after the first load: a warm Lambda or the local server signs without reading the store or
decrypting the key again. A revocation is a document of its own that may appear at any time,
written by any process: whether a CA (or one above it) is revoked is asked of the store again at
every issuance (locally a stat per CA of the chain), or, where each look-up is a network call
(S3), at most once per `revocation_recheck`. So may a renewal (a new generation of a CA's
certificate, for the same key): whether a CA of the chain was renewed is asked at most once per
GENERATION_RECHECK (or `revocation_recheck` when longer); a renewed CA is then loaded again
before it signs, with the CAs below it (their chains carry its certificate). A renewal changes
no key and no name, so until then the previous generation is what goes into chains and bounds
validity; a renewal made by this process applies at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509

from chalicelib import pki
from chalicelib.errors import Conflict, InvalidRequest, NotFound, StorageError
from chalicelib.model import ROOT_PARENT, CertificateRecord, CertType, iso_utc
from chalicelib.ports.store import CertificateStore


@dataclass(frozen=True)
class Authority:
    """A loaded CA: what its children need to be signed and chained."""

    record: CertificateRecord  # its current generation
    signing: pki.SigningAuthority
    path_length: int | None  # None: no limit (roots)
    chain_for_children: str  # its certificate and those above it, each its current generation

    @property
    def fqdn(self) -> str:
        return self.record.fqdn


GENERATION_RECHECK = timedelta(seconds=1)
"""How long a process trusts that the CAs it loaded are their current generations: a directory
listing per CA of the chain per issuance would cost the local server about 5% of an issuance."""
REMOTE_REVOCATION_RECHECK = timedelta(seconds=60)
"""On a remote store (S3): how long a process trusts that a CA is not revoked before asking the
store again. A revocation made by this process applies at once; one made elsewhere within this
delay."""


class AuthorityCache:
    def __init__(
        self,
        store: CertificateStore,
        passphrase: bytes | None,
        revocation_recheck: timedelta = timedelta(0),
    ) -> None:
        self._store = store
        self._passphrase = passphrase
        self._recheck = revocation_recheck
        self._generation_recheck = max(revocation_recheck, GENERATION_RECHECK)
        self._authorities: dict[str, Authority] = {}
        self._checked_unrevoked: dict[str, datetime] = {}
        self._checked_generation: dict[str, datetime] = {}
        self._revoked_here: set[str] = set()
        self._lock = threading.Lock()

    def refuse_if_revoked(self, authority: Authority, now: datetime, field: str) -> None:
        """Conflict when the CA or one above it is revoked: asked again right before a
        certificate it signed is stored, so that none is stored after a revocation is filed."""
        current: Authority | None = authority
        while current is not None:
            self._refuse_if_revoked(current, now)
            parent = current.record.parent_fqdn
            current = None if parent == ROOT_PARENT else self.get(parent, field)

    def _refuse_if_revoked(self, authority: Authority, now: datetime) -> None:
        if self._recheck:
            checked = self._checked_unrevoked.get(authority.fqdn)
            recent = checked is not None and now - checked < self._recheck
            if recent and authority.fqdn not in self._revoked_here:
                return
        issuer = authority.record.parent_fqdn
        if self._store.is_revoked(issuer, authority.fqdn):
            revocation = self._store.get_revocation(issuer, authority.fqdn)
            when = ""
            if revocation is not None:
                when = f" on {iso_utc(revocation.revoked_at)} ({revocation.reason})"
            raise Conflict(f"CA {authority.fqdn} was revoked{when} and issues no more certificates")
        if self._recheck:
            self._checked_unrevoked[authority.fqdn] = now

    def forget(self, fqdn: str) -> None:
        """Called when this process revokes `fqdn`: every later issuance under it reads the
        store, even if a check that raced with the revocation recorded it as unrevoked."""
        self._revoked_here.add(fqdn)
        self._checked_unrevoked.pop(fqdn, None)

    def current(self, fqdn: str, field: str, now: datetime) -> Authority:
        """The CA, as `get`, but loaded again first if it or a CA above it was renewed since it
        was loaded (asked of the store at most once per generation recheck)."""
        authority = self.get(fqdn, field)
        if self._renewed_since_loaded(authority, now, field):
            self.renewed(fqdn)
            authority = self.get(fqdn, field)
        return authority

    def _renewed_since_loaded(self, authority: Authority, now: datetime, field: str) -> bool:
        current = authority
        while True:
            checked = self._checked_generation.get(current.fqdn)
            if checked is None or now - checked >= self._generation_recheck:
                if self._store.current_generation(current.fqdn) != current.record.generation:
                    return True
                self._checked_generation[current.fqdn] = now
            parent = current.record.parent_fqdn
            if parent == ROOT_PARENT:
                return False
            current = self.get(parent, field)

    def renewed(self, fqdn: str) -> None:
        """`fqdn` has a new generation: every CA is loaded again when next asked for (those
        below it hand out chains that hold its certificate; a renewal is rare)."""
        with self._lock:
            self._authorities.clear()
            self._checked_generation.clear()

    def get(self, fqdn: str, field: str) -> Authority:
        """The CA named `fqdn`; NotFound or InvalidRequest (not a CA) naming `field`."""
        cached = self._authorities.get(fqdn)
        if cached is not None:
            return cached
        try:
            record = self._store.get_certificate(fqdn)
        except NotFound as err:
            raise NotFound(f"{field}: CA {fqdn} not found") from err
        if not record.cert_type.is_ca:
            raise InvalidRequest(
                field, f"{fqdn} is a {record.cert_type.value} certificate, not a CA"
            )
        authority = self._load(record)  # its own key first: a failure names this CA
        parent = record.parent_fqdn
        if parent != ROOT_PARENT:
            above = self.get(parent, field).chain_for_children
            authority = replace(authority, chain_for_children=record.certificate_pem + above)
        with self._lock:
            return self._authorities.setdefault(fqdn, authority)

    def _load(self, record: CertificateRecord) -> Authority:
        certificate = pki.load_certificate(record.certificate_pem)
        if record.private_key_pem is None:
            raise StorageError(f"CA {record.fqdn} is stored without its key")
        try:
            private_key = pki.load_trusted_private_key(record.private_key_pem, self._passphrase)
        except (TypeError, ValueError) as err:
            raise StorageError(
                f"the key of CA {record.fqdn} cannot be loaded (is CA_KEY_PASSPHRASE right?)"
            ) from err
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        path_length = None if record.cert_type is CertType.ROOT else constraints.path_length
        return Authority(
            record,
            pki.SigningAuthority(certificate, private_key),
            path_length,
            record.certificate_pem,
        )

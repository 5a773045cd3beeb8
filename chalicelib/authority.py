"""Loaded CAs, and the chain of CAs above a certificate as it stands now.

A CA's documents are written once and its key never changes (a renewal is a new generation of
its certificate for the same key), so a process keeps each CA it loaded, key decrypted once, and
loads a CA's certificate again only when the store has a newer generation of it.

What may change at any time, written by any process, is read from the store whenever it matters:
- `current` asks for the CA's current generation before it signs (its lifetime bounds what it
  signs);
- `chain` asks, for every CA up to the root at once, for its current generation and whether it
  is revoked: the issuer runs it after storing what it signed (see chalicelib.issuer), and every
  chain the service serves is built from it, so no response carries a previous generation of a
  renewed CA, or a revoked CA, as if it were current.
`refuse_if_revoked` is the cheap refusal before signing; where each look-up is a network call
(S3) it trusts a clean answer for `revocation_recheck`, as nothing depends on it but the work
saved: `chain` after the write decides.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from chalicelib import pki
from chalicelib.errors import CaRevoked, Concept, InvalidRequest, NotFound, StorageError
from chalicelib.kinds import policy_for
from chalicelib.model import FILE_KEY, ROOT_PARENT, CertificateRecord, RevocationRecord
from chalicelib.ports.key_store import CaKeyStore
from chalicelib.ports.store import CertificateStore


@dataclass(frozen=True)
class Authority:
    """A loaded CA, at one generation of its certificate."""

    record: CertificateRecord
    signing: pki.SigningAuthority
    path_length: int | None  # None: no limit (roots)

    @property
    def fqdn(self) -> str:
        return self.record.fqdn

    @property
    def parent_fqdn(self) -> str:
        return self.record.parent_fqdn


@dataclass(frozen=True)
class Chain:
    """The CAs above a certificate as they stand now: each one's current generation, the issuer
    first and the root last; `revoked` is the revocation of the nearest of them that is revoked
    (then no chain through it is ever served)."""

    authorities: tuple[Authority, ...]
    revoked: RevocationRecord | None = None
    certificate_revoked: bool = False  # the certificate below, when asked about with the chain

    @property
    def pem(self) -> str:
        return "".join(authority.record.certificate_pem for authority in self.authorities)

    @property
    def is_revoked(self) -> bool:
        return self.revoked is not None


EMPTY_CHAIN = Chain(())
"""A root's: no CA above it."""
REMOTE_REVOCATION_RECHECK = timedelta(seconds=60)
"""On a remote store (S3): how long the refusal before signing trusts that a CA was not revoked.
It only saves signing what would be refused; the check after the write always reads the store."""


class AuthorityCache:
    def __init__(
        self,
        store: CertificateStore,
        passphrase: bytes | None,
        revocation_recheck: timedelta = timedelta(0),
        key_stores: Mapping[str, CaKeyStore] | None = None,
    ) -> None:
        self._store = store
        self._key_stores = dict(key_stores or {})
        self._passphrase = passphrase
        self._recheck = revocation_recheck
        self._authorities: dict[str, Authority] = {}
        self._keys: dict[str, CertificateIssuerPrivateKeyTypes] = {}
        self._checked_unrevoked: dict[str, datetime] = {}
        self._revoked_here: set[str] = set()
        self._lock = threading.Lock()

    def get(self, fqdn: str, concept: Concept) -> Authority:
        """The CA named `fqdn` at the generation this process knows (loaded if it knows none);
        NotFound, or InvalidRequest when it is no CA, about `concept`."""
        cached = self._authorities.get(fqdn)
        if cached is not None:
            return cached
        try:
            record = self._store.get_certificate(fqdn)
        except NotFound as err:
            raise NotFound(f"CA {fqdn} not found", concept) from err
        if not policy_for(record.cert_type).signs_certificates:
            raise InvalidRequest(
                concept, f"{fqdn} is a {record.cert_type.value} certificate, not a CA"
            )
        return self._keep(self._load(record))

    def current(self, fqdn: str, concept: Concept) -> Authority:
        """The CA at its current generation, asked of the store now."""
        authority = self.get(fqdn, concept)
        generation = self._store.current_generation(fqdn)
        if generation != authority.record.generation:
            authority = self._keep(self._load(self._store.get_generation(fqdn, generation)))
        return authority

    def chain(
        self, issuer_fqdn: str, concept: Concept, certificate: tuple[str, str] | None = None
    ) -> Chain:
        """The chain above a certificate that `issuer_fqdn` signed, as it stands now (one read of
        the store per CA, all at once where the store can); with `certificate` (its issuer and
        FQDN), whether it is revoked too, in the same reading."""
        known: list[Authority] = []
        if issuer_fqdn != ROOT_PARENT:
            known.append(self.get(issuer_fqdn, concept))
            while known[-1].parent_fqdn != ROOT_PARENT:
                known.append(self.get(known[-1].parent_fqdn, concept))
        names = [(authority.parent_fqdn, authority.fqdn) for authority in known]
        if certificate is not None:
            names.append(certificate)
        if not names:
            return EMPTY_CHAIN
        states = self._store.certificate_states(names)
        certificate_revoked = certificate is not None and states.pop().revoked
        authorities, revoked_at = [], None
        for authority, state in zip(known, states, strict=True):
            if state.generation != authority.record.generation:
                record = self._store.get_generation(authority.fqdn, state.generation)
                authority = self._keep(self._load(record))
            authorities.append(authority)
            if state.revoked and revoked_at is None:
                revoked_at = authority
        revocation = None
        if revoked_at is not None:
            revocation = self._store.get_revocation(revoked_at.parent_fqdn, revoked_at.fqdn)
            if revocation is None:  # a revocation is never removed; read it as it was seen
                raise StorageError(f"the revocation of {revoked_at.fqdn} could not be read")
        return Chain(tuple(authorities), revocation, certificate_revoked)

    def refuse_if_revoked(self, authority: Authority, now: datetime, concept: Concept) -> None:
        """CaRevoked when the CA or one above it is revoked: the refusal before signing."""
        current: Authority | None = authority
        while current is not None:
            self._refuse_if_revoked(current, now, concept)
            parent = current.parent_fqdn
            current = None if parent == ROOT_PARENT else self.get(parent, concept)

    def _refuse_if_revoked(self, authority: Authority, now: datetime, concept: Concept) -> None:
        if self._recheck and authority.fqdn not in self._revoked_here:
            checked = self._checked_unrevoked.get(authority.fqdn)
            if checked is not None and now - checked < self._recheck:
                return
        revocation = self._store.get_revocation(authority.parent_fqdn, authority.fqdn)
        if revocation is not None:
            raise CaRevoked(authority.fqdn, revocation.revoked_at, revocation.reason, concept)
        if self._recheck:
            self._checked_unrevoked[authority.fqdn] = now

    def forget(self, fqdn: str) -> None:
        """Called when this process revokes `fqdn`: its refusals read the store from then on."""
        self._revoked_here.add(fqdn)
        self._checked_unrevoked.pop(fqdn, None)

    def keep_key(self, fqdn: str, key: CertificateIssuerPrivateKeyTypes) -> None:
        """The key a key store made for the CA `fqdn`, once that CA is stored: kept, so that
        signing with it needs no look-up in the store."""
        self._keys.setdefault(fqdn, key)

    def renewed(self, record: CertificateRecord) -> None:
        """This process stored a new generation of a CA: it signs and chains with it at once."""
        cached = self._authorities.get(record.fqdn)
        if cached is None or cached.record.generation < record.generation:
            self._keep(self._load(record))

    def _keep(self, authority: Authority) -> Authority:
        """Keep the newest generation seen of each CA (a slower reader never sets one back)."""
        with self._lock:
            cached = self._authorities.get(authority.fqdn)
            if cached is not None and cached.record.generation >= authority.record.generation:
                return cached
            self._authorities[authority.fqdn] = authority
            return authority

    def _load(self, record: CertificateRecord) -> Authority:
        certificate = pki.load_certificate(record.certificate_pem)
        private_key = self._keys.get(record.fqdn)
        if private_key is None:
            private_key = self._load_key(record)
            if private_key.public_key() != certificate.public_key():
                raise StorageError(
                    f"the key of CA {record.fqdn} in {record.key_store} is not its certificate's"
                )
            private_key = self._keys.setdefault(record.fqdn, private_key)
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        path_length = None if policy_for(record.cert_type).self_signed else constraints.path_length
        return Authority(record, pki.SigningAuthority(certificate, private_key), path_length)

    def _load_key(self, record: CertificateRecord) -> CertificateIssuerPrivateKeyTypes:
        """A CA's key, decrypted (or found in its key store) once per process: every generation
        of a CA holds the same."""
        if record.key_store != FILE_KEY:
            key_store = self._key_stores.get(record.key_store)
            if key_store is None or record.key_id is None:
                raise StorageError(
                    f"the key of CA {record.fqdn} is held in {record.key_store}, which this "
                    "deployment does not reach"
                )
            return key_store.load_key(record.key_id)
        if record.private_key_pem is None:
            raise StorageError(f"CA {record.fqdn} is stored without its key")
        try:
            return pki.load_trusted_private_key(record.private_key_pem, self._passphrase)
        except (TypeError, ValueError) as err:
            raise StorageError(
                f"the key of CA {record.fqdn} cannot be loaded (is CA_KEY_PASSPHRASE right?)"
            ) from err

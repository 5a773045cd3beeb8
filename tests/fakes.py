"""Fakes of the ports for tests: the same contracts as the adapters (tests/contract runs them
all), kept in memory, and a CertificateService built on them with a fixed clock. They never ship
in the deployment package."""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from chalicelib.adapters.documents import DocumentStore
from chalicelib.adapters.inventory_items import expiring_page, page
from chalicelib.adapters.local.importer import NullImporter
from chalicelib.errors import AlreadyExists, StorageError
from chalicelib.events import CertificateEvent
from chalicelib.held_keys import held_key
from chalicelib.model import (
    NO_FILTER,
    STATUS_ACTIVE,
    ChildFilter,
    ExpiringPage,
    ExpiryCursor,
    InventoryItem,
    InventoryPage,
    KeyType,
)
from chalicelib.pki import generate_private_key
from chalicelib.ports.iot_registry import (
    CaRegistration,
    IotCertificate,
    IotRegistrationError,
    RegisteredCertificate,
    certificate_id_of,
    thing_name_of,
)
from chalicelib.ports.publisher import EventPublisher
from chalicelib.ports.store import CertificateStore
from chalicelib.service import CertificateService


class InMemoryStore(DocumentStore):
    """For unit tests: same contract, kept in a dict."""

    def __init__(self) -> None:
        self._documents: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _create(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._documents:
                raise FileExistsError(key)
            self._documents[key] = data

    def _read(self, key: str) -> bytes | None:
        return self._documents.get(key)

    def _exists(self, key: str) -> bool:
        return key in self._documents

    def _keys(self, prefix: str) -> Iterator[str]:
        return iter([key for key in list(self._documents) if key.startswith(prefix)])

    def _delete(self, key: str) -> None:
        with self._lock:
            self._documents.pop(key, None)


class InMemoryInventory:
    """For unit tests: same contract, kept in sorted lists per parent."""

    def __init__(self) -> None:
        self._children: dict[str, list[str]] = {}
        self._items: dict[tuple[str, str], InventoryItem] = {}
        self._notices: dict[tuple[str, str], str] = {}
        self._removed: set[tuple[str, str]] = set()  # the tombstones
        self._lock = threading.Lock()

    def record_certificate(self, item: InventoryItem) -> bool:
        key = (item.fqdn, item.parent_fqdn)
        with self._lock:
            if key in self._items or key in self._removed:
                return False
            self._items[key] = item
            children = self._children.setdefault(item.parent_fqdn, [])
            children.insert(bisect_right(children, item.fqdn), item.fqdn)
            return True

    def list_children(
        self,
        parent_fqdn: str,
        limit: int,
        after: str | None,
        child_filter: ChildFilter = NO_FILTER,
    ) -> InventoryPage:
        children = self._children.get(parent_fqdn, [])
        start = bisect_right(children, after) if after is not None else 0
        matching = []
        for name in children[start:]:
            item = self._items[(name, parent_fqdn)]
            if child_filter.matches(item):
                matching.append(item)
                if len(matching) > limit:
                    break
        return page(matching, limit, more=False)

    def list_expiring(
        self, since: str, until: str, limit: int, after: ExpiryCursor | None
    ) -> ExpiringPage:
        """A sort of every item: fine for tests (the adapters read an index)."""
        start = (after.not_after, after.fqdn, after.parent_fqdn) if after else ("", "", "")
        matching = sorted(
            (item for item in self._items.values()
             if item.status == STATUS_ACTIVE and since <= item.not_after <= until
             and (item.not_after, item.fqdn, item.parent_fqdn) > start),
            key=lambda item: (item.not_after, item.fqdn, item.parent_fqdn),
        )[: limit + 1]  # fmt: skip
        return expiring_page(matching, limit, more=False, read=len(matching))

    def mark_expiry_notice(self, fqdn: str, parent_fqdn: str, day: str) -> bool:
        with self._lock:
            item = self._items.get((fqdn, parent_fqdn))
            if item is None or item.status != STATUS_ACTIVE:
                return False
            if self._notices.get((fqdn, parent_fqdn), "") >= day:
                return False
            self._notices[(fqdn, parent_fqdn)] = day
            return True

    def update_status(self, fqdn: str, parent_fqdn: str, status: str) -> bool:
        with self._lock:
            item = self._items.get((fqdn, parent_fqdn))
            if item is None:
                return False
            self._items[(fqdn, parent_fqdn)] = replace(item, status=status)
            return True

    def set_acm_certificate_arn(self, fqdn: str, parent_fqdn: str, arn: str) -> bool:
        with self._lock:
            item = self._items.get((fqdn, parent_fqdn))
            if item is None or item.acm_certificate_arn is not None:
                return False
            self._items[(fqdn, parent_fqdn)] = replace(item, acm_certificate_arn=arn)
            return True

    def record_generation(self, item: InventoryItem) -> bool:
        with self._lock:
            existing = self._items.get((item.fqdn, item.parent_fqdn))
            if existing is None or existing.generation >= item.generation:
                return False
            self._items[(item.fqdn, item.parent_fqdn)] = replace(
                item,
                created_at=existing.created_at,
                status=existing.status,
                acm_certificate_arn=item.acm_certificate_arn or existing.acm_certificate_arn,
            )
            return True

    def remove_item(self, fqdn: str, parent_fqdn: str) -> bool:
        with self._lock:
            if self._items.pop((fqdn, parent_fqdn), None) is None:
                return False
            self._children[parent_fqdn].remove(fqdn)
            self._notices.pop((fqdn, parent_fqdn), None)
            self._removed.add((fqdn, parent_fqdn))
            return True

    def is_removed(self, fqdn: str, parent_fqdn: str) -> bool:
        return (fqdn, parent_fqdn) in self._removed

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        return self._items.get((fqdn, parent_fqdn))

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        return (fqdn, parent_fqdn) in self._items

    def batch(self) -> AbstractContextManager[object]:
        return nullcontext()


class RecordingPublisher:
    """For unit tests: keeps the events it was given."""

    def __init__(self) -> None:
        self.events: list[CertificateEvent] = []

    def publish(self, events: Sequence[CertificateEvent]) -> None:
        self.events.extend(events)


@dataclass
class InMemoryIotRegistry:
    """A fake of AWS IoT's registry for unit tests: statuses by certificate ID, things."""

    available = True

    code: str = "0" * 64
    endpoint: str = "example-ats.iot.us-east-1.amazonaws.com"
    cas: dict[str, str] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    things: dict[str, str] = field(default_factory=dict)  # thing name -> certificate ID
    issuers: dict[str, str] = field(default_factory=dict)  # certificate ID -> its CA's ID
    page_size: int = 250
    registrations: list[CaRegistration] = field(default_factory=list)
    thing_attributes: dict[str, str] = field(default_factory=dict)

    def registration_code(self) -> str:
        return self.code

    def register_ca(self, registration: CaRegistration) -> IotCertificate:
        certificate_id = certificate_id_of(registration.ca_certificate_pem)
        if certificate_id in self.cas:
            raise AlreadyExists(f"certificate: already registered with AWS IoT as {certificate_id}")
        self.cas[certificate_id] = "ACTIVE"
        self.registrations.append(registration)
        return IotCertificate(certificate_id, f"arn:aws:iot:us-east-1:0:cacert/{certificate_id}")

    def data_endpoint(self) -> str:
        return self.endpoint

    def register_device(self, certificate_pem: str, ca_pem: str, thing: bool) -> IotCertificate:
        if certificate_id_of(ca_pem) not in self.cas:
            raise IotRegistrationError("its CA is not registered with AWS IoT")
        certificate_id = certificate_id_of(certificate_pem)
        self.certificates[certificate_id] = "ACTIVE"
        self.issuers[certificate_id] = certificate_id_of(ca_pem)
        if thing:
            self.things[thing_name_of(certificate_pem)] = certificate_id
        return IotCertificate(certificate_id, f"arn:aws:iot:us-east-1:0:cert/{certificate_id}")

    def revoke_certificate(self, certificate_id: str) -> bool:
        if certificate_id not in self.certificates:
            return False
        self.certificates[certificate_id] = "REVOKED"
        return True

    def deactivate_ca(self, certificate_id: str) -> bool:
        if certificate_id not in self.cas:
            return False
        self.cas[certificate_id] = "INACTIVE"
        return True

    def certificates_of_ca(
        self, ca_certificate_id: str, marker: str | None
    ) -> tuple[list[RegisteredCertificate], str | None]:
        """Pages of `page_size`, the marker an offset (AWS IoT's are opaque)."""
        registered = [
            RegisteredCertificate(certificate_id, self.certificates[certificate_id])
            for certificate_id, ca_id in self.issuers.items()
            if ca_id == ca_certificate_id
        ]
        start = int(marker or 0)
        end = start + self.page_size
        return registered[start:end], str(end) if end < len(registered) else None

    def remove_certificate(self, certificate_id: str) -> bool:
        if self.certificates.pop(certificate_id, None) is None:
            return False
        self.issuers.pop(certificate_id, None)
        for name in [name for name, owner in self.things.items() if owner == certificate_id]:
            del self.things[name]
        return True

    def remove_ca(self, certificate_id: str) -> bool:
        return self.cas.pop(certificate_id, None) is not None


NOW = datetime(2026, 1, 1, tzinfo=UTC)
"""The fixed clock's time."""


class MovingClock:
    """A clock the test moves (`clock.now = ...`); it starts at NOW."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def fixed_clock() -> datetime:
    return NOW


def make_service(
    store: CertificateStore | None = None,
    inventory: InMemoryInventory | None = None,
    publisher: EventPublisher | None = None,
    passphrase: bytes | None = None,
    clock: Any = fixed_clock,
    key_store: InMemoryKeyStore | None = None,
    **options: Any,
) -> CertificateService:
    return CertificateService(
        store=store if store is not None else InMemoryStore(),
        inventory=inventory if inventory is not None else InMemoryInventory(),
        publisher=publisher if publisher is not None else RecordingPublisher(),
        importer=NullImporter(),
        ca_key_passphrase=passphrase,
        clock=clock,
        key_stores={key_store.name: key_store} if key_store is not None else None,
        **options,
    )


class InMemoryKeyStore:
    """A CaKeyStore (chalicelib.ports.key_store) keeping its keys in a dict: each key signs
    through `held_key`, as a KMS or PKCS#11 key does, and never leaves it."""

    name = "pkcs11"  # the name it is offered under
    max_bulk: int | None = None

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.discarded: list[str] = []
        self.signatures = 0

    def create_key(self, ca_fqdn: str, key_type: KeyType) -> Any:
        if key_type is KeyType.ED25519:
            raise StorageError("no ED25519 CA keys here")
        key_id = f"{ca_fqdn}/{len(self.keys) + 1}"
        self.keys[key_id] = generate_private_key(key_type)
        return self.load_key(key_id)

    def load_key(self, key_id: str) -> Any:
        if key_id not in self.keys:
            raise StorageError(f"no key {key_id}")
        private_key = self.keys[key_id]

        def sign_with(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
            self.signatures += 1
            if isinstance(private_key, rsa.RSAPrivateKey):
                return private_key.sign(data, padding.PKCS1v15(), algorithm)
            return private_key.sign(data, ec.ECDSA(algorithm))

        return held_key(private_key.public_key(), sign_with, key_id)

    def discard_key(self, key_id: str) -> None:
        self.keys.pop(key_id, None)
        self.discarded.append(key_id)

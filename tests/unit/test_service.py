"""CertificateService over in-memory adapters and a fixed clock: fakes, no mocks."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.verification import PolicyBuilder, Store

from chalicelib.adapters.local.events import InProcessPublisher
from chalicelib.adapters.local.importer import NullImporter
from chalicelib.errors import Concept, Conflict, InvalidRequest, StorageError
from chalicelib.events import CertificateCreated, CertificateEvent, CertificateRenewed
from chalicelib.issuance import BulkTerms, DeviceOrder, InProcessSigner, SignedDevice
from chalicelib.model import (
    CertificateRecord,
    CertType,
    InventoryItem,
    IssuedCertificate,
    IssueRequest,
    RenewRequest,
)
from chalicelib.ports.publisher import EventDeliveryError
from chalicelib.ports.store import CertificateStore
from chalicelib.service import CertificateService
from tests.fakes import (
    NOW,
    InMemoryInventory,
    InMemoryStore,
    RecordingPublisher,
    fixed_clock,
    make_service,
)
from tests.fixtures import AuditLines

NOW_ISO = "2026-01-01T00:00:00Z"
ROOT = "example.com"
CELL = "cell1.devices.example.com"
SERVER = "mqtt.example.com"
PASSPHRASE = b"correct horse battery staple"


class SettableClock:
    """A clock the test moves by hand (never the wall clock)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CountingStore(InMemoryStore):
    """The in-memory store, counting reads of certificate documents per FQDN."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: Counter[str] = Counter()

    def get_generation(self, fqdn: str, generation: int) -> CertificateRecord:
        self.reads[fqdn] += 1
        return super().get_generation(fqdn, generation)


class FailingPublisher:
    """EventBridge down: every publish fails after the adapter's retries."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def publish(self, events: Sequence[CertificateEvent]) -> None:
        self.attempts.extend(event.fqdn for event in events)
        raise EventDeliveryError(f"PutEvents failed for {events[0].fqdn}")


@dataclass
class InventoryHandler:
    """The local delivery (wiring): events straight to the service's inventory keeper;
    `failing` simulates a broken delivery."""

    service: CertificateService | None = None
    failing: bool = False
    delivered: list[CertificateEvent] = field(default_factory=list)

    def __call__(self, events: Sequence[CertificateEvent]) -> int:
        if self.failing:
            raise ConnectionError("inventory table unreachable")
        assert self.service is not None
        self.delivered.extend(events)
        return self.service.inventory_keeper.record(events)


def wired_end_to_end(
    store: CertificateStore | None = None,
) -> tuple[CertificateService, InMemoryInventory, InventoryHandler]:
    """Service -> InProcessPublisher -> inventory handler -> the same service, as locally."""
    inventory = InMemoryInventory()
    handler = InventoryHandler()
    service = make_service(store=store, inventory=inventory, publisher=InProcessPublisher(handler))
    handler.service = service
    return service, inventory, handler


def root(service: CertificateService, **fields: Any) -> IssuedCertificate:
    return service.create_root(IssueRequest(cert_type=CertType.ROOT, fqdn=ROOT, **fields))


def intermediate(service: CertificateService, fqdn: str = CELL, **fields: Any) -> IssuedCertificate:
    return service.create_intermediate(
        IssueRequest(cert_type=CertType.INTERMEDIATE, fqdn=fqdn, **fields)
    )


def server(service: CertificateService, **fields: Any) -> IssuedCertificate:
    return service.create_server(IssueRequest(cert_type=CertType.SERVER, fqdn=SERVER, **fields))


def device(service: CertificateService, parent: str = CELL, **fields: Any) -> IssuedCertificate:
    return service.create_device(
        IssueRequest(cert_type=CertType.CLIENT, parent_fqdn=parent, **fields)
    )


def load(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def stored_fqdns(store: CertificateStore) -> list[str]:
    return sorted(record.fqdn for record in store.iter_certificates())


def expected_item(record: CertificateRecord, created_at: str = NOW_ISO) -> InventoryItem:
    return CertificateCreated.from_record(record).to_inventory_item(created_at)


# Events and inventory --------------------------------------------------------------------


def test_issuing_publishes_a_created_event_with_the_certificate_details() -> None:
    publisher = RecordingPublisher()
    service = make_service(publisher=publisher)
    root(service)
    intermediate(service)

    issued = device(service)

    record = issued.record
    certificate = load(record.certificate_pem)
    assert record.device_id is not None
    assert uuid.UUID(record.device_id).version == 4
    assert [event.fqdn for event in publisher.events] == [ROOT, CELL, record.fqdn]
    assert publisher.events[-1].to_detail() == {
        "FQDN": f"{record.device_id}.{CELL}",
        "Type": "Client",
        "ParentFQDN": CELL,
        "ValidUntil": "2027-01-01",
        "Serial": format(certificate.serial_number, "x"),
        "NotAfter": "2027-01-01T00:00:00Z",
        "KeyType": "EC_P256",
        "Fingerprint": certificate.fingerprint(hashes.SHA256()).hex(),
    }


def test_a_root_event_names_root_as_its_parent() -> None:
    publisher = RecordingPublisher()
    service = make_service(publisher=publisher)

    issued = root(service)

    (event,) = publisher.events
    assert event.to_detail()["ParentFQDN"] == "Root"
    assert event.to_detail()["Type"] == "Root"
    assert event.to_detail()["ValidUntil"] == "2035-12-30"
    assert event.serial == issued.record.serial


def test_the_service_does_not_write_the_inventory_itself() -> None:
    inventory = InMemoryInventory()
    service = make_service(inventory=inventory, publisher=RecordingPublisher())
    root(service)
    intermediate(service)
    issued = device(service)

    for parent in ("Root", ROOT, CELL):
        assert inventory.list_children(parent, 100, None).items == []
    assert not inventory.contains(issued.record.fqdn, CELL)
    assert service.list_certificates(CELL, 100, None).items == []


def test_events_delivered_in_process_fill_the_inventory() -> None:
    service, _, handler = wired_end_to_end()
    root_record = root(service).record
    cell_record = intermediate(service).record
    server_record = server(service, sans=("192.0.2.10",)).record
    device_record = device(service).record

    assert len(handler.delivered) == 4
    assert service.list_certificates(None, 100, None).items == [expected_item(root_record)]
    assert service.list_certificates(ROOT, 100, None).items == [
        expected_item(cell_record),
        expected_item(server_record),
    ]
    assert service.list_certificates(CELL, 100, None).items == [expected_item(device_record)]


class FailingAfter(InMemoryStore):
    """Stores `good` certificates, then refuses every later write as a broken disk would."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def put_certificate(self, record: CertificateRecord) -> None:
        if record.cert_type is CertType.CLIENT:
            if self.good == 0:
                raise StorageError(f"could not write {record.fqdn}: no space left on device")
            self.good -= 1
        super().put_certificate(record)


def test_a_bulk_that_fails_part_way_keeps_lists_and_audits_what_was_stored(
    audit_lines: AuditLines,
) -> None:
    store = FailingAfter(good=3)
    service, inventory, _ = wired_end_to_end(store)
    root(service)
    intermediate(service)
    audit_lines.lines.clear()

    with pytest.raises(StorageError, match="no space left"):
        service.create_devices(IssueRequest(cert_type=CertType.CLIENT, parent_fqdn=CELL, count=5))

    devices = sorted(r.fqdn for r in store.iter_certificates() if r.parent_fqdn == CELL)
    assert len(devices) == 3
    listed = inventory.list_children(CELL, 100, None).items
    assert sorted(item.fqdn for item in listed) == devices
    assert sorted(line["fqdn"] for line in audit_lines.lines) == devices
    assert {line["audit"] for line in audit_lines.lines} == {"issued"}


class CountingSigner(InProcessSigner):
    """Signs in process and counts the certificates signed so far."""

    def __init__(self) -> None:
        self.signed = 0

    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Iterator[SignedDevice]:
        for signed in super().sign_devices(terms, orders):
            self.signed += 1
            yield signed


class SigningWatchingStore(FailingAfter):
    """Notes how many certificates were signed when each device certificate was written."""

    def __init__(self, signer: CountingSigner, good: int) -> None:
        super().__init__(good)
        self.signer = signer
        self.signed_at_write: list[int] = []

    def put_certificate(self, record: CertificateRecord) -> None:
        if record.cert_type is CertType.CLIENT:
            self.signed_at_write.append(self.signer.signed)
        super().put_certificate(record)


def test_a_bulk_is_stored_as_it_is_signed_and_a_failed_write_stops_the_signing() -> None:
    signer = CountingSigner()
    store = SigningWatchingStore(signer, good=4)
    service = CertificateService(
        store=store,
        inventory=InMemoryInventory(),
        publisher=RecordingPublisher(),
        importer=NullImporter(),
        clock=fixed_clock,
        signer=signer,
    )
    root(service)
    intermediate(service)

    with pytest.raises(StorageError, match="no space left"):
        service.create_devices(IssueRequest(cert_type=CertType.CLIENT, parent_fqdn=CELL, count=50))

    assert store.signed_at_write == [1, 2, 3, 4, 5]  # each written before the next is signed
    assert signer.signed == 5  # nothing signed after the failed write


class FailingSigner(InProcessSigner):
    """Signs `good` certificates, then fails as an unexpected error in the signing would."""

    def __init__(self, good: int) -> None:
        self.good = good

    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Iterator[SignedDevice]:
        yield from super().sign_devices(terms, orders[: self.good])
        raise MemoryError("signing failed part-way")


def test_a_bulk_whose_signing_fails_part_way_lists_what_was_stored() -> None:
    inventory = InMemoryInventory()
    handler = InventoryHandler()
    service = CertificateService(
        store=InMemoryStore(),
        inventory=inventory,
        publisher=InProcessPublisher(handler),
        importer=NullImporter(),
        clock=fixed_clock,
        signer=FailingSigner(good=3),
    )
    handler.service = service
    root(service)
    intermediate(service)

    with pytest.raises(MemoryError):
        service.create_devices(IssueRequest(cert_type=CertType.CLIENT, parent_fqdn=CELL, count=10))

    stored = sorted(r.fqdn for r in service._store.iter_certificates() if r.parent_fqdn == CELL)
    assert len(stored) == 3
    assert sorted(item.fqdn for item in inventory.list_children(CELL, 100, None).items) == stored


def test_a_replayed_event_leaves_one_inventory_item() -> None:
    service, inventory, handler = wired_end_to_end()
    root(service)

    event = handler.delivered[0]
    assert service.record_event(event.detail_type, event.to_detail()) is False

    assert len(inventory.list_children("Root", 100, None).items) == 1


def test_a_failed_event_delivery_does_not_fail_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryStore()
    inventory = InMemoryInventory()
    publisher = FailingPublisher()
    service = make_service(store=store, inventory=inventory, publisher=publisher)

    with caplog.at_level(logging.ERROR, logger="chalicelib.service"):
        issued = [root(service), intermediate(service), server(service), device(service)]

    assert publisher.attempts == [item.record.fqdn for item in issued]
    for item in issued:
        assert service.get_certificate(item.record.fqdn).record == item.record
    assert inventory.list_children("Root", 100, None).items == []
    assert any(ROOT in message for message in caplog.messages)

    assert service.reconcile_inventory() == 4

    for item in issued:
        assert inventory.contains(item.record.fqdn, item.record.parent_fqdn)
    assert service.list_certificates(CELL, 100, None).items == [expected_item(issued[3].record)]
    assert service.reconcile_inventory() == 0


def test_reconcile_adds_exactly_the_missing_items() -> None:
    service, inventory, handler = wired_end_to_end()
    root_record = root(service).record
    cell_record = intermediate(service).record
    handler.failing = True
    lost_server = server(service).record
    lost_device = device(service).record
    handler.failing = False
    kept_device = device(service).record
    assert not inventory.contains(lost_server.fqdn, ROOT)
    assert not inventory.contains(lost_device.fqdn, CELL)

    assert service.reconcile_inventory() == 2

    assert inventory.list_children("Root", 100, None).items == [expected_item(root_record)]
    assert inventory.list_children(ROOT, 100, None).items == [
        expected_item(cell_record),
        expected_item(lost_server),
    ]
    assert inventory.list_children(CELL, 100, None).items == sorted(
        [expected_item(lost_device), expected_item(kept_device)], key=lambda item: item.fqdn
    )
    assert service.reconcile_inventory() == 0


# Validity --------------------------------------------------------------------------------


def issue_one(service: CertificateService, cert_type: CertType) -> IssuedCertificate:
    """Issue one certificate of `cert_type`, creating the CAs it needs first."""
    if cert_type is CertType.ROOT:
        return root(service)
    root(service)
    if cert_type is CertType.INTERMEDIATE:
        return intermediate(service)
    if cert_type is CertType.SERVER:
        return server(service)
    intermediate(service)
    return device(service)


@pytest.mark.parametrize(
    ("cert_type", "not_after"),
    [
        (CertType.ROOT, datetime(2035, 12, 30, tzinfo=UTC)),  # 3650 days
        (CertType.INTERMEDIATE, datetime(2030, 12, 31, tzinfo=UTC)),  # 1825 days
        (CertType.SERVER, datetime(2027, 2, 2, tzinfo=UTC)),  # 397 days
        (CertType.CLIENT, datetime(2027, 1, 1, tzinfo=UTC)),  # 365 days
    ],
)
def test_default_validity_per_type(cert_type: CertType, not_after: datetime) -> None:
    issued = issue_one(make_service(), cert_type)

    certificate = load(issued.record.certificate_pem)
    assert issued.record.cert_type is cert_type
    assert issued.record.not_after == not_after
    assert certificate.not_valid_after_utc == not_after
    assert certificate.not_valid_before_utc == NOW - timedelta(minutes=5)


def test_defaults_are_clamped_to_the_issuer_not_after() -> None:
    service = make_service()
    root_not_after = root(service, validity_days=100).record.not_after
    assert root_not_after == datetime(2026, 4, 11, tzinfo=UTC)

    cell = intermediate(service).record
    mqtt = server(service).record
    leaf = device(service).record
    short = device(service, validity_days=30).record

    assert cell.not_after == root_not_after
    assert mqtt.not_after == root_not_after
    assert leaf.not_after == root_not_after
    assert load(leaf.certificate_pem).not_valid_after_utc == root_not_after
    assert short.not_after == NOW + timedelta(days=30)


def test_validity_beyond_the_issuer_names_validity_days_and_the_maximum() -> None:
    store = InMemoryStore()
    publisher = RecordingPublisher()
    service = make_service(store=store, publisher=publisher)
    root(service, validity_days=100)

    with pytest.raises(InvalidRequest) as raised:
        intermediate(service, validity_days=101)

    assert raised.value.concept is Concept.VALIDITY
    assert "at most 100" in raised.value.rule
    assert stored_fqdns(store) == [ROOT]
    assert [event.fqdn for event in publisher.events] == [ROOT]
    assert intermediate(service, validity_days=100).record.not_after == NOW + timedelta(days=100)


def test_the_maximum_counts_whole_days_left_at_issuance() -> None:
    clock = SettableClock()
    service = make_service(clock=clock)
    root(service, validity_days=100)
    clock.now = NOW + timedelta(days=10, hours=1)  # 89 days and 23 hours left

    with pytest.raises(InvalidRequest) as raised:
        intermediate(service, validity_days=90)

    assert raised.value.concept is Concept.VALIDITY
    assert "at most 89" in raised.value.rule
    assert intermediate(service, validity_days=89).record.not_after == clock.now + timedelta(
        days=89
    )


def test_an_expired_issuer_cannot_sign() -> None:
    clock = SettableClock()
    service = make_service(clock=clock)
    root(service, validity_days=10)
    clock.now = NOW + timedelta(days=11)

    with pytest.raises(Conflict, match=r"^CA .* expired on") as raised:
        intermediate(service)
    assert raised.value.concept is Concept.ISSUER


# Keys ------------------------------------------------------------------------------------


def test_ca_keys_are_stored_encrypted_when_a_passphrase_is_set() -> None:
    store = InMemoryStore()
    service = make_service(store=store, passphrase=PASSPHRASE)

    root_issued = root(service)
    cell_issued = intermediate(service)

    assert root_issued.private_key_pem is None
    assert cell_issued.private_key_pem is None
    for fqdn in (ROOT, CELL):
        pem = store.get_certificate(fqdn).private_key_pem
        assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(pem.encode(), password=None)


def test_ca_keys_are_stored_plain_without_a_passphrase() -> None:
    store = InMemoryStore()
    root(make_service(store=store))

    assert store.get_certificate(ROOT).private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_a_new_service_with_the_same_passphrase_signs_under_a_stored_ca() -> None:
    store = InMemoryStore()
    first = make_service(store=store, passphrase=PASSPHRASE)
    root_certificate = load(root(first).record.certificate_pem)
    cell_certificate = load(intermediate(first).record.certificate_pem)

    issued = device(make_service(store=store, passphrase=PASSPHRASE))

    leaf = load(issued.record.certificate_pem)
    leaf.verify_directly_issued_by(cell_certificate)
    verifier = PolicyBuilder().time(NOW).store(Store([root_certificate])).build_client_verifier()
    verified = verifier.verify(leaf, x509.load_pem_x509_certificates(issued.chain_pem.encode()))
    assert verified.chain == [leaf, cell_certificate, root_certificate]


@pytest.mark.parametrize("passphrase", [b"wrong passphrase", None], ids=["wrong", "missing"])
def test_a_wrong_passphrase_cannot_load_the_ca_key(passphrase: bytes | None) -> None:
    store = InMemoryStore()
    first = make_service(store=store, passphrase=PASSPHRASE)
    root(first)
    intermediate(first)
    before = stored_fqdns(store)

    with pytest.raises(StorageError, match=CELL):
        device(make_service(store=store, passphrase=passphrase))

    assert stored_fqdns(store) == before


@pytest.mark.parametrize("kind", ["server", "device"])
def test_leaf_keys_are_returned_and_never_encrypted(kind: str) -> None:
    store = InMemoryStore()
    service = make_service(store=store, passphrase=PASSPHRASE)
    root(service)
    intermediate(service)

    issued = server(service) if kind == "server" else device(service)

    assert issued.private_key_pem is not None
    assert issued.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert store.get_certificate(issued.record.fqdn).private_key_pem == issued.private_key_pem
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), password=None)
    public_format = serialization.PublicFormat.SubjectPublicKeyInfo
    public_der = serialization.Encoding.DER
    assert key.public_key().public_bytes(public_der, public_format) == load(
        issued.record.certificate_pem
    ).public_key().public_bytes(public_der, public_format)


# CA cache --------------------------------------------------------------------------------


def test_a_ca_record_is_read_once_per_service() -> None:
    store = CountingStore()
    service = make_service(store=store)
    root(service)
    intermediate(service)
    assert store.reads[CELL] == 0

    device(service)
    assert store.reads[CELL] == 1
    reads_after_first_device = Counter(store.reads)

    devices = [device(service) for _ in range(3)]

    assert store.reads == reads_after_first_device
    assert len({issued.record.fqdn for issued in devices}) == 3


# Renewal -----------------------------------------------------------------------------------


class RenewalRaceStore(InMemoryStore):
    """Lets `racers` renewals read the current generation before any of them writes: each
    waits at a barrier after its read, so every one renews the same generation."""

    def __init__(self, racers: int) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None
        self._racers = racers

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        record = super().get_certificate(fqdn)
        if self.barrier is not None and record.cert_type is CertType.CLIENT:
            self.barrier.wait(timeout=30)
        return record

    def race(self) -> None:
        self.barrier = threading.Barrier(self._racers)


def test_of_renewals_that_read_the_same_generation_one_is_stored_the_rest_name_it() -> None:
    store = RenewalRaceStore(racers=8)
    inventory = InMemoryInventory()
    publisher = RecordingPublisher()
    service = make_service(store=store, inventory=inventory, publisher=publisher)
    root(service)
    intermediate(service)
    first = device(service).record
    store.race()

    def attempt() -> IssuedCertificate | Conflict:
        try:
            return service.renew(first.fqdn, RenewRequest())  # no serial: the race is the write's
        except Conflict as err:
            return err

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: attempt(), range(8)))

    (winner,) = [outcome for outcome in outcomes if isinstance(outcome, IssuedCertificate)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, Conflict)]
    assert len(losers) == 7
    for loser in losers:
        assert f"generation 2 (serial {winner.record.serial}) is current" in str(loser)
    store.barrier = None
    assert [r.serial for r in store.list_generations(first.fqdn)] == [
        first.serial,
        winner.record.serial,
    ]
    renewed_events = [e for e in publisher.events if isinstance(e, CertificateRenewed)]
    assert [e.serial for e in renewed_events] == [winner.record.serial]


def test_renewing_a_ca_in_one_process_is_seen_by_another_at_once() -> None:
    store = InMemoryStore()
    first, second = make_service(store=store), make_service(store=store)
    root(first)
    intermediate(first, validity_days=100)
    before = device(second)  # `second` has loaded the cell

    renewed_cell = first.renew(CELL, RenewRequest(validity_days=1000))
    after = device(second)  # the same instant: no cache to wait out

    assert before.chain_pem.startswith(intermediate_pem(store, generation=1))
    assert after.chain_pem.startswith(renewed_cell.record.certificate_pem)
    # the validity of what the cell issues is bounded by its current certificate
    assert before.record.not_after == NOW + timedelta(days=100)
    assert after.record.not_after == NOW + timedelta(days=365)
    # and what was issued before the renewal is served with the renewed cell's chain
    served = second.get_certificate(before.record.fqdn)
    assert served.chain_pem.startswith(renewed_cell.record.certificate_pem)


def intermediate_pem(store: InMemoryStore, generation: int) -> str:
    return store.get_generation(CELL, generation).certificate_pem


class PausingBulkStore(InMemoryStore):
    """Holds a bulk before the write of its `pause_at`-th device until let go."""

    def __init__(self, pause_at: int) -> None:
        super().__init__()
        self._pause_at = pause_at
        self._devices = 0
        self.reached = threading.Event()
        self.go_on = threading.Event()

    def put_certificate(self, record: CertificateRecord) -> None:
        if record.cert_type is CertType.CLIENT:
            self._devices += 1
            if self._devices == self._pause_at:
                self.reached.set()
                assert self.go_on.wait(30)
        super().put_certificate(record)


def test_a_ca_revoked_during_a_bulk_counts_what_the_bulk_had_stored() -> None:
    store = PausingBulkStore(pause_at=241)
    service, _, _ = wired_end_to_end(store)
    root(service)
    intermediate(service)
    outcome: list[Any] = []

    def bulk() -> None:
        request = IssueRequest(cert_type=CertType.CLIENT, parent_fqdn=CELL, count=300)
        try:
            outcome.append(service.create_devices(request))
        except Conflict as refused:
            outcome.append(refused)

    running = threading.Thread(target=bulk)
    running.start()
    assert store.reached.wait(30)  # 240 stored, the 241st about to be
    revoked = service.revoke(CELL, "keyCompromise")
    store.go_on.set()
    running.join(30)

    assert revoked.issued_certificates == 240
    assert isinstance(outcome[0], Conflict) and "was revoked" in outcome[0].message
    devices = [record for record in store.iter_certificates() if record.parent_fqdn == CELL]
    late = [record for record in devices if store.get_revocation(CELL, record.fqdn)]
    assert len(devices) - len(late) >= 200  # before the last clean look: they stand
    assert all(service.get_certificate(record.fqdn).revocation for record in devices)

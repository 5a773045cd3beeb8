"""The walk of a CA's revocation down to AWS IoT (chalicelib.cascade), on fakes: what it revokes,
and how it stops when its time is up and goes on from its cursor, even inside a page."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.cascade import Cursor, RevocationCascade
from chalicelib.events import CertificateCreated
from chalicelib.model import CertificateRecord, CertType, InventoryItem, IssueRequest
from chalicelib.ports.iot_registry import certificate_id_of
from tests.fakes import InMemoryInventory, InMemoryIotRegistry, InMemoryStore, make_service

ROOT, DEVICES, CELL = "example.com", "devices.example.com", "cell1.devices.example.com"


def registered_pki(
    page_size: int, registered: int = 7
) -> tuple[RevocationCascade, InMemoryIotRegistry, list[str]]:
    """Root, devices CA, cell (both in the inventory), and `registered` devices of the cell
    registered with the fake AWS IoT under the cell's certificate."""
    store, inventory = InMemoryStore(), InMemoryInventory()
    service = make_service(store=store, inventory=inventory)
    registry = InMemoryIotRegistry(page_size=page_size)
    service.create_root(IssueRequest(CertType.ROOT, fqdn=ROOT))
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=DEVICES, path_length=1))
    cell = service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=CELL))
    for record in (store.get_certificate(DEVICES), cell.record):
        inventory.record_certificate(_item(record))
    registry.cas[certificate_id_of(cell.record.certificate_pem)] = "ACTIVE"
    devices = []
    for _ in range(registered):
        issued = service.create_device(IssueRequest(CertType.CLIENT, parent_fqdn=CELL))
        registry.register_device(issued.record.certificate_pem, cell.record.certificate_pem, False)
        devices.append(issued.record.fingerprint_sha256)
    return RevocationCascade(store, inventory, registry), registry, devices


def _item(record: CertificateRecord) -> InventoryItem:
    return CertificateCreated.from_record(record).to_inventory_item("2026-01-01T00:00:00Z")


def after_calls(registry: InMemoryIotRegistry, calls: int) -> Callable[[], bool]:
    """Time is up once the registry has revoked `calls` more certificates."""
    start = sum(status == "REVOKED" for status in registry.certificates.values())
    return lambda: sum(s == "REVOKED" for s in registry.certificates.values()) - start >= calls


def test_a_walk_with_time_to_spare_revokes_everything_below_in_one_go() -> None:
    cascade, registry, devices = registered_pki(page_size=3)
    assert cascade.run(cascade.start(DEVICES)) is None
    assert {registry.certificates[device] for device in devices} == {"REVOKED"}
    assert set(registry.cas.values()) == {"INACTIVE"}


def test_a_walk_out_of_time_hands_on_a_cursor_even_inside_a_page() -> None:
    cascade, registry, devices = registered_pki(page_size=3)
    cursor: Cursor | None = cascade.start(DEVICES)
    invocations = 0
    while cursor is not None:
        invocations += 1
        cursor = cascade.run(Cursor.from_dict(cursor.to_dict()), after_calls(registry, 2))
        assert invocations < 20
    assert invocations >= 4  # seven devices, two revocations an invocation
    assert {registry.certificates[device] for device in devices} == {"REVOKED"}


def test_a_walk_that_finds_nothing_registered_still_ends_a_step_at_a_time() -> None:
    cascade, registry, _ = registered_pki(page_size=3, registered=0)
    cursor: Cursor | None = cascade.start(DEVICES)
    for _ in range(10):
        if cursor is None:
            break
        cursor = cascade.run(cursor, lambda: True)  # one step an invocation
    assert cursor is None
    assert set(registry.cas.values()) == {"INACTIVE"}

"""The inventory keeper: what each event does to the inventory, in whatever order events come."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from chalicelib.errors import NotFound
from chalicelib.events import CertificateCreated, CertificateRenewed, CertificateRevoked
from chalicelib.inventory_keeping import InventoryKeeper
from chalicelib.model import STATUS_ACTIVE, STATUS_REVOKED, CertificateRecord, CertType
from tests.fakes import InMemoryInventory, InMemoryStore
from tests.records import CELL, make_record

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class BatchCountingInventory(InMemoryInventory):
    def __init__(self) -> None:
        super().__init__()
        self.batches = 0

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.batches += 1
        yield


def keeper_with(*records: CertificateRecord) -> tuple[InventoryKeeper, BatchCountingInventory]:
    store = InMemoryStore()
    for record in records:
        store.put_certificate(record)
    inventory = BatchCountingInventory()
    return InventoryKeeper(store, inventory, lambda: NOW), inventory


def revoked_event(record: CertificateRecord) -> CertificateRevoked:
    return CertificateRevoked(
        record.fqdn, record.parent_fqdn, record.serial, "keyCompromise", "2026-03-01T00:00:00Z"
    )


def test_created_adds_the_item_and_a_replay_changes_nothing() -> None:
    record = make_record()
    keeper, inventory = keeper_with(record)
    created = CertificateCreated.from_record(record)

    assert keeper.record([created]) == 1
    assert keeper.record([created]) == 0

    item = inventory.find(record.fqdn, CELL)
    assert item == created.to_inventory_item("2026-03-01T00:00:00Z")
    assert len(inventory.list_children(CELL, 10, None).items) == 1


def test_revoked_marks_the_item() -> None:
    record = make_record()
    keeper, inventory = keeper_with(record)
    keeper.record([CertificateCreated.from_record(record)])

    assert keeper.record([revoked_event(record)]) == 1

    item = inventory.find(record.fqdn, CELL)
    assert item is not None and item.status == STATUS_REVOKED


def test_a_revoked_before_its_created_builds_the_item_from_the_store() -> None:
    record = make_record()
    keeper, inventory = keeper_with(record)

    assert keeper.record([revoked_event(record)]) == 1
    assert keeper.record([CertificateCreated.from_record(record)]) == 0  # late, and harmless

    item = inventory.find(record.fqdn, CELL)
    assert item is not None
    assert (item.status, item.serial, item.not_after) == (
        STATUS_REVOKED,
        record.serial,
        CertificateCreated.from_record(record).not_after,
    )


def test_a_revoked_for_a_certificate_never_stored_fails_to_be_retried() -> None:
    """Raised, so that EventBridge retries the event and then dead-letters it."""
    keeper, inventory = keeper_with()
    record = make_record()

    with pytest.raises(NotFound, match=record.fqdn):
        keeper.record([revoked_event(record)])

    assert not inventory.contains(record.fqdn, CELL)


def test_a_late_created_gives_a_server_item_built_by_its_revoked_the_acm_arn() -> None:
    arn = "arn:aws:acm:eu-central-1:123456789012:certificate/1f2e3d4c"
    server = make_record("mqtt.example.com", cert_type=CertType.SERVER, acm_certificate_arn=None)
    keeper, inventory = keeper_with(server)
    created = CertificateCreated.from_record(replace(server, acm_certificate_arn=arn))

    keeper.record([revoked_event(server)])
    assert keeper.record([created]) == 1
    assert keeper.record([created]) == 0  # a replay changes nothing more

    item = inventory.find(server.fqdn, CELL)
    assert item is not None and (item.acm_certificate_arn, item.status) == (arn, STATUS_REVOKED)


def test_several_events_commit_in_one_batch_and_one_event_in_none() -> None:
    records = [make_record(f"device{index}.{CELL}") for index in range(3)]
    keeper, inventory = keeper_with(*records)

    keeper.record([CertificateCreated.from_record(records[0])])
    assert inventory.batches == 0
    keeper.record([CertificateCreated.from_record(record) for record in records[1:]])
    assert inventory.batches == 1
    assert [item.status for item in inventory.list_children(CELL, 10, None).items] == [
        STATUS_ACTIVE
    ] * 3


def test_the_lambda_entry_parses_the_detail_and_refuses_unknown_types() -> None:
    record = make_record()
    keeper, inventory = keeper_with(record)
    detail = CertificateCreated.from_record(record).to_detail()

    assert keeper.record_detail("created", detail) is True
    assert keeper.record_detail("created", detail) is False
    with pytest.raises(ValueError, match="unknown event detail-type 'renamed'"):
        keeper.record_detail("renamed", detail)
    assert inventory.contains(record.fqdn, CELL)


def test_reconcile_restores_the_acm_arns_that_only_lost_events_carried() -> None:
    arn = "arn:aws:acm:eu-central-1:123456789012:certificate/{}"
    lost = make_record("lost.example.com", cert_type=CertType.SERVER, acm_certificate_arn=None)
    late = make_record("late.example.com", cert_type=CertType.SERVER, acm_certificate_arn=None)
    never_imported = make_record(
        "csr.example.com", cert_type=CertType.SERVER, acm_certificate_arn=None
    )
    keeper, inventory = keeper_with(lost, late, never_imported)
    keeper.record([revoked_event(late)])  # its item, built from the store, has no ARN
    asked: list[list[str]] = []

    def find_imported(records: list[CertificateRecord]) -> dict[str, str]:
        asked.append(sorted(record.fqdn for record in records))
        return {
            record.fqdn: arn.format(record.fqdn)
            for record in records
            if record.fqdn != never_imported.fqdn
        }

    assert keeper.reconcile(find_imported) == 3  # two items added, one ARN set on the third

    assert asked == [sorted([lost.fqdn, late.fqdn, never_imported.fqdn])]  # one look-up
    for record in (lost, late):
        found = inventory.find(record.fqdn, CELL)
        assert found is not None and found.acm_certificate_arn == arn.format(record.fqdn)
    found = inventory.find(never_imported.fqdn, CELL)
    assert found is not None and found.acm_certificate_arn is None


# Renewals ------------------------------------------------------------------------------------


def generations_of(record: CertificateRecord, count: int) -> list[CertificateRecord]:
    """`record` and `count - 1` renewals of it, each with its own serial and validity."""
    generations = [record]
    for number in range(2, count + 1):
        previous = generations[-1]
        generations.append(
            replace(
                previous,
                generation=number,
                serial=f"{number:040x}",
                previous_serial=previous.serial,
                not_after=previous.not_after.replace(year=previous.not_after.year + 1),
                fingerprint_sha256=f"{number:064x}",
            )
        )
    return generations


def test_renewed_events_move_the_item_forward_only_whatever_their_order() -> None:
    generations = generations_of(make_record(), 3)
    keeper, inventory = keeper_with(*generations)
    keeper.record([CertificateCreated.from_record(generations[0])])

    assert keeper.record([CertificateRenewed.from_record(generations[2])]) == 1
    assert keeper.record([CertificateRenewed.from_record(generations[1])]) == 0  # late
    assert keeper.record([CertificateRenewed.from_record(generations[2])]) == 0  # replayed
    assert keeper.record([CertificateCreated.from_record(generations[0])]) == 0  # replayed

    item = inventory.find(generations[0].fqdn, CELL)
    assert item is not None
    assert (item.generation, item.serial) == (3, generations[2].serial)
    assert item.fingerprint == generations[2].fingerprint_sha256


def test_a_renewed_before_its_created_builds_the_item_from_the_current_generation() -> None:
    generations = generations_of(make_record(), 3)
    keeper, inventory = keeper_with(*generations)

    assert keeper.record([CertificateRenewed.from_record(generations[1])]) == 1
    assert keeper.record([CertificateCreated.from_record(generations[0])]) == 0

    item = inventory.find(generations[0].fqdn, CELL)
    assert item is not None  # from the store: its current generation, newer than the event
    assert (item.generation, item.serial, item.status) == (3, generations[2].serial, "active")


def test_a_renewed_event_goes_through_the_lambda_entry() -> None:
    generations = generations_of(make_record(), 2)
    keeper, inventory = keeper_with(*generations)
    keeper.record([CertificateCreated.from_record(generations[0])])
    detail = json.loads(json.dumps(CertificateRenewed.from_record(generations[1]).to_detail()))

    assert detail["Generation"] == 2 and detail["PreviousSerial"] == generations[0].serial
    assert keeper.record_detail("renewed", detail) is True

    item = inventory.find(generations[0].fqdn, CELL)
    assert item is not None and item.serial == generations[1].serial


def test_fsck_and_reconcile_see_an_item_behind_the_stored_generation() -> None:
    generations = generations_of(make_record(), 3)
    keeper, inventory = keeper_with(*generations)
    keeper.record([CertificateCreated.from_record(generations[0])])  # the renewed ones lost

    assert keeper.missing_items() == [
        f"{generations[0].fqdn} (inventory at generation 1, stored 3)"
    ]
    assert keeper.reconcile() == 1

    assert keeper.missing_items() == []
    item = inventory.find(generations[0].fqdn, CELL)
    assert item is not None and (item.generation, item.serial) == (3, generations[2].serial)
    assert keeper.reconcile() == 0

"""One contract for the Inventory port, run against every adapter.

Add an adapter by appending a factory to INVENTORY_FACTORIES; DynamoInventory runs on moto.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sqlite3
import threading
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.aws.inventory import DynamoInventory, item_to_dynamo
from chalicelib.adapters.inventory_items import item_values
from chalicelib.adapters.local.inventory import SqliteInventory
from chalicelib.errors import StorageError
from chalicelib.model import CertType, ChildFilter, InventoryItem
from chalicelib.ports.inventory import Inventory
from tests.backends import AwsResources, adapter_params
from tests.fakes import InMemoryInventory

ROOT = "example.com"
CELL1 = "cell1.devices.example.com"
CELL2 = "cell2.devices.example.com"


def make_item(
    fqdn: str, parent_fqdn: str = CELL1, cert_type: CertType = CertType.CLIENT
) -> InventoryItem:
    return InventoryItem(
        fqdn=fqdn,
        parent_fqdn=parent_fqdn,
        cert_type=cert_type,
        valid_until="2027-01-01",
        serial=f"{zlib.crc32(f'{parent_fqdn}/{fqdn}'.encode()):08x}",
        not_after="2027-01-01T00:00:00Z",
        key_type="EC_P256",
        fingerprint="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        created_at="2026-01-01T00:00:00Z",
    )


def device_names(count: int, parent_fqdn: str = CELL1) -> list[str]:
    return [f"device-{index:04d}.{parent_fqdn}" for index in range(count)]


def record_shuffled(inventory: Inventory, fqdns: list[str], parent_fqdn: str = CELL1) -> None:
    """Insert out of order so that ordering has to come from the adapter."""
    shuffled = list(fqdns)
    random.Random(20260101).shuffle(shuffled)
    for fqdn in shuffled:
        assert inventory.record_certificate(make_item(fqdn, parent_fqdn)) is True


def listed_fqdns(
    inventory: Inventory, parent_fqdn: str, limit: int, after: str | None
) -> list[str]:
    return [item.fqdn for item in inventory.list_children(parent_fqdn, limit, after).items]


InventoryFactory = Callable[[pytest.FixtureRequest], Inventory]


def _in_memory_inventory(request: pytest.FixtureRequest) -> Inventory:
    return InMemoryInventory()


def _sqlite_inventory(request: pytest.FixtureRequest) -> Inventory:
    return SqliteInventory(request.getfixturevalue("tmp_path") / "inv.sqlite3")


def _dynamo_inventory(request: pytest.FixtureRequest) -> Inventory:
    aws: AwsResources = request.getfixturevalue("aws_resources")
    return DynamoInventory(aws.session.client("dynamodb"), aws.table, aws.index)


INVENTORY_FACTORIES: list[tuple[str, InventoryFactory]] = [
    ("in-memory", _in_memory_inventory),
    ("sqlite", _sqlite_inventory),
    ("dynamodb", _dynamo_inventory),
]


@pytest.fixture(params=adapter_params(INVENTORY_FACTORIES))
def inventory(request: pytest.FixtureRequest) -> Inventory:
    return request.param(request)


class TestInventoryContract:
    def test_a_removed_item_leaves_every_listing(self, inventory: Inventory) -> None:
        names = device_names(3)
        record_shuffled(inventory, names)
        until = "2099-01-01T00:00:00Z"
        assert inventory.remove_item(names[1], CELL1) is True
        assert inventory.remove_item(names[1], CELL1) is False
        assert inventory.remove_item(names[0], CELL2) is False  # another parent's key

        assert listed_fqdns(inventory, CELL1, 10, None) == [names[0], names[2]]
        assert inventory.find(names[1], CELL1) is None
        expiring = inventory.list_expiring("2000-01-01T00:00:00Z", until, 10, None).items
        assert [item.fqdn for item in expiring] == [names[0], names[2]]
        # a tombstone: late events of it change nothing
        assert inventory.is_removed(names[1], CELL1) is True
        assert inventory.is_removed(names[0], CELL1) is False
        late = make_item(names[1])
        assert inventory.record_certificate(late) is False
        assert inventory.update_status(names[1], CELL1, "revoked") is False
        assert inventory.record_generation(dataclasses.replace(late, generation=2)) is False
        assert inventory.set_acm_certificate_arn(names[1], CELL1, "arn:aws:acm:x") is False
        assert inventory.find(names[1], CELL1) is None
        assert listed_fqdns(inventory, CELL1, 1, None) == [names[0]]  # pages skip it too
        assert listed_fqdns(inventory, CELL1, 1, names[0]) == [names[2]]

    def test_record_certificate_is_idempotent(self, inventory: Inventory) -> None:
        item = make_item(f"device-0001.{CELL1}")

        assert inventory.record_certificate(item) is True
        assert inventory.record_certificate(item) is False

        page = inventory.list_children(CELL1, 10, None)
        assert page.items == [item]
        assert page.last_fqdn is None

    def test_a_replayed_item_keeps_the_first_attributes(self, inventory: Inventory) -> None:
        first = make_item(f"device-0001.{CELL1}")
        replay = dataclasses.replace(first, created_at="2026-01-02T00:00:00Z", serial="ff")
        inventory.record_certificate(first)

        assert inventory.record_certificate(replay) is False

        assert inventory.list_children(CELL1, 10, None).items == [first]

    def test_every_attribute_round_trips(self, inventory: Inventory) -> None:
        item = InventoryItem(
            fqdn=ROOT,
            parent_fqdn="Root",
            cert_type=CertType.ROOT,
            valid_until="2035-12-30",
            serial="5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8c9b7d5e3f",
            not_after="2035-12-30T00:00:00Z",
            key_type="RSA_4096",
            fingerprint="0" * 64,
            created_at="2026-01-01T00:00:00Z",
            status="revoked",
        )
        inventory.record_certificate(item)

        (listed,) = inventory.list_children("Root", 10, None).items

        assert listed == item
        assert listed.cert_type is CertType.ROOT

    def test_a_server_item_keeps_its_acm_arn(self, inventory: Inventory) -> None:
        arn = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
        item = dataclasses.replace(
            make_item("mqtt.example.com", ROOT, CertType.SERVER), acm_certificate_arn=arn
        )
        inventory.record_certificate(item)

        assert inventory.list_children(ROOT, 10, None).items == [item]
        assert inventory.find("mqtt.example.com", ROOT) == item

    def test_an_acm_arn_is_given_once_to_an_item_without_one(self, inventory: Inventory) -> None:
        arn = "arn:aws:acm:eu-central-1:123456789012:certificate/1f2e3d4c"
        item = make_item("mqtt.example.com", ROOT, CertType.SERVER)
        inventory.record_certificate(item)

        assert inventory.set_acm_certificate_arn(item.fqdn, ROOT, arn) is True
        assert inventory.set_acm_certificate_arn(item.fqdn, ROOT, arn + "-other") is False
        assert inventory.set_acm_certificate_arn("absent.example.com", ROOT, arn) is False

        found = inventory.find(item.fqdn, ROOT)
        assert found == replace(item, acm_certificate_arn=arn)
        assert not inventory.contains("absent.example.com", ROOT)

    def test_a_renewal_moves_the_item_to_its_generation_and_never_back(
        self, inventory: Inventory
    ) -> None:
        first = make_item(f"device-0001.{CELL1}", cert_type=CertType.SERVER)
        inventory.record_certificate(first)
        inventory.update_status(first.fqdn, CELL1, "revoked")

        def generation(number: int, arn: str | None = None) -> InventoryItem:
            return replace(
                first, generation=number, serial=f"{number:040x}", key_type="RSA_2048",
                not_after=f"20{number + 30}-01-01T00:00:00Z", valid_until=f"20{number + 30}-01-01",
                fingerprint=f"{number:064x}", created_at="2030-01-01T00:00:00Z",
                acm_certificate_arn=arn,
            )  # fmt: skip

        assert inventory.record_generation(generation(3, "arn:aws:acm:x:1:certificate/a")) is True
        assert inventory.record_generation(generation(2)) is False  # late: an older generation
        assert inventory.record_generation(generation(3)) is False  # replayed
        assert inventory.record_generation(generation(4)) is True  # no ARN: keeps the one it has
        assert inventory.record_generation(replace(generation(5), fqdn=f"x.{CELL1}")) is False

        stored = inventory.find(first.fqdn, CELL1)
        expected = replace(
            generation(4, "arn:aws:acm:x:1:certificate/a"),
            created_at=first.created_at,  # when the certificate was first issued
            status="revoked",  # a renewal changes no status
        )
        assert stored == expected
        assert listed_fqdns(inventory, CELL1, 10, None) == [first.fqdn]
        expiring = inventory.list_children(CELL1, 10, None, ChildFilter("2033-01-01T00:00:00Z"))
        assert expiring.items == []  # the item's not_after is its generation's

    def test_find_returns_the_item_of_exactly_that_key(self, inventory: Inventory) -> None:
        fqdn = f"device-0001.{CELL1}"
        item = make_item(fqdn, CELL1)
        assert inventory.find(fqdn, CELL1) is None

        inventory.record_certificate(item)

        assert inventory.find(fqdn, CELL1) == item
        assert inventory.find(fqdn, CELL2) is None
        assert inventory.find(f"device-0002.{CELL1}", CELL1) is None

    def test_list_children_orders_by_fqdn(self, inventory: Inventory) -> None:
        fqdns = device_names(20)
        record_shuffled(inventory, fqdns)

        assert listed_fqdns(inventory, CELL1, 100, None) == sorted(fqdns)

    def test_list_children_honors_limit(self, inventory: Inventory) -> None:
        fqdns = device_names(10)
        record_shuffled(inventory, fqdns)

        page = inventory.list_children(CELL1, 3, None)

        assert [item.fqdn for item in page.items] == fqdns[:3]
        assert page.last_fqdn == fqdns[2]

    def test_after_continues_strictly_after_an_existing_fqdn(self, inventory: Inventory) -> None:
        fqdns = device_names(10)
        record_shuffled(inventory, fqdns)

        assert listed_fqdns(inventory, CELL1, 3, fqdns[4]) == fqdns[5:8]

    def test_after_between_two_fqdns_continues_at_the_next_one(self, inventory: Inventory) -> None:
        record_shuffled(inventory, [f"a.{CELL1}", f"c.{CELL1}", f"e.{CELL1}"])

        assert listed_fqdns(inventory, CELL1, 10, f"b.{CELL1}") == [f"c.{CELL1}", f"e.{CELL1}"]
        assert listed_fqdns(inventory, CELL1, 10, f"e.{CELL1}") == []
        assert listed_fqdns(inventory, CELL1, 10, f"z.{CELL1}") == []

    @pytest.mark.parametrize(
        ("count", "limit", "more_follow"),
        [(7, 7, False), (8, 7, True), (6, 7, False), (1, 1, False), (2, 1, True), (0, 5, False)],
    )
    def test_last_fqdn_is_set_only_when_more_items_follow(
        self, inventory: Inventory, count: int, limit: int, more_follow: bool
    ) -> None:
        fqdns = device_names(count)
        record_shuffled(inventory, fqdns)

        page = inventory.list_children(CELL1, limit, None)

        assert [item.fqdn for item in page.items] == fqdns[:limit]
        assert page.last_fqdn == (fqdns[limit - 1] if more_follow else None)

    def test_last_fqdn_is_none_when_the_continued_page_ends_exactly(
        self, inventory: Inventory
    ) -> None:
        fqdns = device_names(14)
        record_shuffled(inventory, fqdns)

        first = inventory.list_children(CELL1, 7, None)
        second = inventory.list_children(CELL1, 7, first.last_fqdn)

        assert first.last_fqdn == fqdns[6]
        assert [item.fqdn for item in second.items] == fqdns[7:]
        assert second.last_fqdn is None

    def test_children_of_different_parents_do_not_mix(self, inventory: Inventory) -> None:
        cell1 = device_names(5, CELL1)
        cell2 = device_names(4, CELL2)
        record_shuffled(inventory, cell1, CELL1)
        record_shuffled(inventory, cell2, CELL2)
        inventory.record_certificate(make_item(ROOT, "Root", CertType.ROOT))

        assert listed_fqdns(inventory, CELL1, 100, None) == cell1
        assert listed_fqdns(inventory, CELL2, 100, None) == cell2
        assert listed_fqdns(inventory, "Root", 100, None) == [ROOT]
        assert listed_fqdns(inventory, "devices.example.com", 100, None) == []
        assert listed_fqdns(inventory, CELL2, 100, cell1[0]) == cell2

    def test_the_same_fqdn_under_two_parents_is_two_items(self, inventory: Inventory) -> None:
        fqdn = f"shared.{CELL1}"

        assert inventory.record_certificate(make_item(fqdn, CELL1)) is True
        assert inventory.record_certificate(make_item(fqdn, CELL2)) is True

        assert inventory.list_children(CELL1, 10, None).items == [make_item(fqdn, CELL1)]
        assert inventory.list_children(CELL2, 10, None).items == [make_item(fqdn, CELL2)]
        assert inventory.contains(fqdn, CELL1)
        assert inventory.contains(fqdn, CELL2)

    def test_contains_needs_both_fqdn_and_parent(self, inventory: Inventory) -> None:
        fqdn = f"device-0001.{CELL1}"
        assert inventory.contains(fqdn, CELL1) is False

        inventory.record_certificate(make_item(fqdn, CELL1))

        assert inventory.contains(fqdn, CELL1) is True
        assert inventory.contains(fqdn, CELL2) is False
        assert inventory.contains(f"device-0002.{CELL1}", CELL1) is False

    def test_paging_through_250_items_returns_each_exactly_once(self, inventory: Inventory) -> None:
        fqdns = device_names(250)
        record_shuffled(inventory, fqdns)
        record_shuffled(inventory, device_names(30, CELL2), CELL2)
        seen: list[str] = []
        after: str | None = None
        pages = 0

        while True:
            page = inventory.list_children(CELL1, 7, after)
            pages += 1
            assert len(page.items) <= 7
            seen.extend(item.fqdn for item in page.items)
            if page.last_fqdn is None:
                break
            assert page.last_fqdn == page.items[-1].fqdn
            after = page.last_fqdn
            assert pages < 100, "paging does not terminate"

        assert seen == sorted(fqdns)
        assert pages == 36  # 35 full pages of 7, then 5

    def test_the_expiry_listing_reads_only_active_items_in_its_window(
        self, inventory: Inventory
    ) -> None:
        """Every parent, soonest first, across pages of 3, each item once; revoked items and
        those outside the window are neither listed nor read."""
        within: list[InventoryItem] = []
        for index in range(10):  # day 10 + index of January 2027: inside [Jan 10, Jan 19]
            parent = CELL1 if index % 2 else CELL2
            item = replace(make_item(f"d{index}.{parent}", parent),
                           not_after=f"2027-01-{10 + index:02d}T00:00:00Z")  # fmt: skip
            within.append(item)
        twins = [  # the NotAfter of d2: a page may end between them
            replace(make_item(f"{name}.{CELL1}"), not_after="2027-01-12T00:00:00Z")
            for name in ("a", "z")
        ]
        outside = [
            replace(make_item(f"o{month}.{ROOT}", ROOT), not_after=f"2027-0{month}-01T00:00:00Z")
            for month in (1, 3, 4, 5)
        ]
        revoked = replace(make_item(f"r.{CELL1}"), not_after="2027-01-15T00:00:00Z")
        for item in [*within, *twins, *outside, revoked]:
            assert inventory.record_certificate(item) is True
        assert inventory.update_status(revoked.fqdn, revoked.parent_fqdn, "revoked") is True
        expected = {(i.fqdn, i.not_after) for i in [*within, *twins]}

        seen: list[InventoryItem] = []
        reads, after = [], None
        for _ in range(10):
            page = inventory.list_expiring("2027-01-10T00:00:00Z", "2027-01-19T00:00:00Z", 3, after)
            seen += page.items
            reads.append(page.read)
            if page.last is None:
                break
            assert (page.last.fqdn, page.last.parent_fqdn) == (
                page.items[-1].fqdn, page.items[-1].parent_fqdn,
            )  # fmt: skip
            after = page.last
        listed = [(i.fqdn, i.not_after) for i in seen]
        assert len(listed) == len(expected) and set(listed) == expected  # each once
        not_afters = [i.not_after for i in seen]
        assert not_afters == sorted(not_afters)  # soonest first (ties: the adapter's order)
        assert len(reads) == 4 and all(read <= 4 for read in reads), reads  # limit + 1 a page

    def test_an_expiry_notice_is_noted_once_a_day_and_only_for_an_active_item(
        self, inventory: Inventory
    ) -> None:
        active, revoked = make_item(f"a.{CELL1}"), make_item(f"r.{CELL1}")
        for item in (active, revoked):
            inventory.record_certificate(item)
        inventory.update_status(revoked.fqdn, revoked.parent_fqdn, "revoked")

        assert inventory.mark_expiry_notice(active.fqdn, CELL1, "2026-12-06") is True
        assert inventory.mark_expiry_notice(active.fqdn, CELL1, "2026-12-06") is False
        assert inventory.mark_expiry_notice(active.fqdn, CELL1, "2026-12-05") is False
        assert inventory.mark_expiry_notice(active.fqdn, CELL1, "2026-12-07") is True
        assert inventory.mark_expiry_notice(revoked.fqdn, CELL1, "2026-12-06") is False
        assert inventory.mark_expiry_notice(f"none.{CELL1}", CELL1, "2026-12-06") is False
        assert inventory.find(active.fqdn, CELL1) == active  # the item itself is as it was


class TestSqliteInventory:
    """What only the SQLite adapter promises: a shared file, safe under threads."""

    def test_two_instances_on_one_file_see_each_others_writes(self, tmp_path: Path) -> None:
        path = tmp_path / "inv.sqlite3"
        first = SqliteInventory(path)
        second = SqliteInventory(path)

        assert first.record_certificate(make_item(f"a.{CELL1}")) is True
        assert second.record_certificate(make_item(f"b.{CELL1}")) is True
        assert second.record_certificate(make_item(f"a.{CELL1}")) is False

        expected = [f"a.{CELL1}", f"b.{CELL1}"]
        assert listed_fqdns(first, CELL1, 10, None) == expected
        assert listed_fqdns(second, CELL1, 10, None) == expected
        assert first.contains(f"b.{CELL1}", CELL1)
        assert listed_fqdns(SqliteInventory(path), CELL1, 10, None) == expected

    def test_a_store_made_before_renewals_gets_generations_and_keeps_its_items(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "inv.sqlite3"
        item = make_item(f"a.{CELL1}")
        with contextlib.closing(sqlite3.connect(path)) as connection, connection:
            connection.execute(
                "CREATE TABLE inventory (FQDN TEXT NOT NULL, ParentFQDN TEXT NOT NULL, "
                "Type TEXT NOT NULL, ValidUntil TEXT NOT NULL, Serial TEXT NOT NULL, "
                "NotAfter TEXT NOT NULL, KeyType TEXT NOT NULL, Fingerprint TEXT NOT NULL, "
                "CreatedAt TEXT NOT NULL, Status TEXT NOT NULL, AcmCertificateArn TEXT, "
                "PRIMARY KEY (ParentFQDN, FQDN)) WITHOUT ROWID"
            )
            connection.execute(
                "INSERT INTO inventory VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                item_values(item)[:-1],
            )

        inventory = SqliteInventory(path)

        assert inventory.find(item.fqdn, CELL1) == item  # generation 1
        assert inventory.record_generation(replace(item, generation=2, serial="02")) is True
        assert SqliteInventory(path).find(item.fqdn, CELL1) == replace(
            item, generation=2, serial="02"
        )

    def test_a_batch_commits_its_writes_together_at_its_end(self, tmp_path: Path) -> None:
        path = tmp_path / "inv.sqlite3"
        writer, reader = SqliteInventory(path), SqliteInventory(path)

        with writer.batch():
            assert writer.record_certificate(make_item(f"a.{CELL1}")) is True
            assert writer.record_certificate(make_item(f"b.{CELL1}")) is True
            assert writer.record_certificate(make_item(f"a.{CELL1}")) is False
            assert listed_fqdns(writer, CELL1, 10, None) == [f"a.{CELL1}", f"b.{CELL1}"]
            assert listed_fqdns(reader, CELL1, 10, None) == []

        assert listed_fqdns(reader, CELL1, 10, None) == [f"a.{CELL1}", f"b.{CELL1}"]

    def test_a_batch_left_by_an_exception_keeps_none_of_its_writes(self, tmp_path: Path) -> None:
        inventory = SqliteInventory(tmp_path / "inv.sqlite3")
        inventory.record_certificate(make_item(f"before.{CELL1}"))

        with pytest.raises(RuntimeError, match="interrupted"), inventory.batch():
            inventory.record_certificate(make_item(f"lost.{CELL1}"))
            raise RuntimeError("interrupted")

        assert listed_fqdns(inventory, CELL1, 10, None) == [f"before.{CELL1}"]
        assert inventory.record_certificate(make_item(f"after.{CELL1}")) is True
        assert listed_fqdns(SqliteInventory(tmp_path / "inv.sqlite3"), CELL1, 10, None) == [
            f"after.{CELL1}",
            f"before.{CELL1}",
        ]

    def test_a_nested_batch_joins_the_outer_one(self, tmp_path: Path) -> None:
        path = tmp_path / "inv.sqlite3"
        writer, reader = SqliteInventory(path), SqliteInventory(path)

        with writer.batch():
            with writer.batch():
                writer.record_certificate(make_item(f"inner.{CELL1}"))
            assert listed_fqdns(reader, CELL1, 10, None) == []
            writer.record_certificate(make_item(f"outer.{CELL1}"))

        assert listed_fqdns(reader, CELL1, 10, None) == [f"inner.{CELL1}", f"outer.{CELL1}"]

    def test_a_batch_sqlite_rolled_back_refuses_later_writes_and_keeps_none(
        self, tmp_path: Path
    ) -> None:
        inventory = SqliteInventory(tmp_path / "inv.sqlite3")
        connection = inventory._connection()
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages + 2}")  # a disk that fills up
        errors: list[str] = []

        with pytest.raises(StorageError, match="rolled back"), inventory.batch():
            for index in range(100):
                try:
                    inventory.record_certificate(make_item(f"{index:03d}-{'x' * 200}.{CELL1}"))
                except StorageError as err:
                    errors.append(str(err))

        assert "full" in errors[0]
        assert len(errors) > 1
        assert all("already rolled back" in error for error in errors[1:])
        connection.execute("PRAGMA max_page_count = 1073741823")
        assert listed_fqdns(inventory, CELL1, 1000, None) == []
        assert inventory.record_certificate(make_item(f"after.{CELL1}")) is True

    def test_concurrent_writes_from_four_threads_lose_nothing(self, tmp_path: Path) -> None:
        inventory = SqliteInventory(tmp_path / "inv.sqlite3")
        shared = [f"shared-{index:02d}.{CELL1}" for index in range(10)]
        start = threading.Barrier(4)
        new_counts: list[int] = []
        failures: list[BaseException] = []
        lock = threading.Lock()

        def write(thread_index: int) -> None:
            own = [f"t{thread_index}-{index:03d}.{CELL1}" for index in range(50)]
            try:
                start.wait()
                added = sum(inventory.record_certificate(make_item(f)) for f in own + shared)
            except BaseException as err:  # reported below; a thread must not die silently
                with lock:
                    failures.append(err)
                return
            with lock:
                new_counts.append(added)

        threads = [threading.Thread(target=write, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert failures == []
        assert sum(new_counts) == 4 * 50 + len(shared)
        listed = listed_fqdns(inventory, CELL1, 1000, None)
        assert len(listed) == 4 * 50 + len(shared)
        assert listed == sorted(set(listed))


@pytest.fixture
def dynamo_inventory(aws_resources: AwsResources) -> DynamoInventory:
    return DynamoInventory(
        aws_resources.session.client("dynamodb"), aws_resources.table, aws_resources.index
    )


class TestDynamoInventory:
    """What only the DynamoDB adapter promises: the table's attributes, 1 MB pages, our errors."""

    def test_items_are_stored_under_the_design_attribute_names(
        self, dynamo_inventory: DynamoInventory, aws_resources: AwsResources
    ) -> None:
        item = make_item(f"device-0001.{CELL1}")

        dynamo_inventory.record_certificate(item)

        stored = aws_resources.session.client("dynamodb").get_item(
            TableName=aws_resources.table,
            Key={"FQDN": {"S": item.fqdn}, "ParentFQDN": {"S": CELL1}},
        )["Item"]
        assert stored == {
            "FQDN": {"S": item.fqdn},
            "ParentFQDN": {"S": CELL1},
            "Type": {"S": "Client"},
            "ValidUntil": {"S": "2027-01-01"},
            "Serial": {"S": item.serial},
            "NotAfter": {"S": "2027-01-01T00:00:00Z"},
            "KeyType": {"S": "EC_P256"},
            "Fingerprint": {"S": item.fingerprint},
            "CreatedAt": {"S": "2026-01-01T00:00:00Z"},
            "Status": {"S": "active"},
            "Generation": {"N": "1"},
            "Expiring": {"S": "active"},  # the key of the sparse expiry index: active items
        }

    def test_a_page_cut_short_by_the_1_mb_limit_is_filled_by_querying_on(
        self, dynamo_inventory: DynamoInventory, aws_resources: AwsResources
    ) -> None:
        """Four items of ~300 KB: DynamoDB returns three, with a LastEvaluatedKey, for Limit=6;
        the listing (which filters out tombstones) queries on from there to fill its page."""
        client = aws_resources.session.client("dynamodb")
        fqdns = device_names(4)
        for fqdn in fqdns:
            padded = item_to_dynamo(make_item(fqdn)) | {"Padding": {"S": "x" * 300_000}}
            client.put_item(TableName=aws_resources.table, Item=padded)
        raw = client.query(
            TableName=aws_resources.table,
            IndexName=aws_resources.index,
            KeyConditionExpression="ParentFQDN = :parent",
            ExpressionAttributeValues={":parent": {"S": CELL1}},
            Limit=6,
        )
        assert len(raw["Items"]) < 4 and "LastEvaluatedKey" in raw  # the premise of this test

        whole = dynamo_inventory.list_children(CELL1, 5, None)
        first = dynamo_inventory.list_children(CELL1, 3, None)
        second = dynamo_inventory.list_children(CELL1, 3, first.last_fqdn)

        assert [item.fqdn for item in whole.items] == fqdns
        assert whole.last_fqdn is None
        assert [item.fqdn for item in first.items] == fqdns[:3]
        assert first.last_fqdn == fqdns[2]
        assert [item.fqdn for item in second.items] == fqdns[3:]
        assert second.last_fqdn is None

    @pytest.mark.parametrize(
        "operation",
        [
            pytest.param(lambda inv: inv.record_certificate(make_item(ROOT, "Root")), id="record"),
            pytest.param(lambda inv: inv.list_children(CELL1, 10, None), id="list"),
            pytest.param(lambda inv: inv.list_children(CELL1, 10, f"a.{CELL1}"), id="list-after"),
            pytest.param(lambda inv: inv.find(ROOT, "Root"), id="find"),
            pytest.param(lambda inv: inv.contains(ROOT, "Root"), id="contains"),
        ],
    )
    def test_a_missing_table_raises_storage_error(
        self, aws_resources: AwsResources, operation: Callable[[DynamoInventory], object]
    ) -> None:
        inventory = DynamoInventory(
            aws_resources.session.client("dynamodb"), "no-such-table", aws_resources.index
        )

        with pytest.raises(StorageError) as raised:
            operation(inventory)

        assert isinstance(raised.value.__cause__, ClientError)
        assert raised.value.__cause__.response["Error"]["Code"] == "ResourceNotFoundException"

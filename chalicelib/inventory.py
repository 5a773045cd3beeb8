"""Inventory port and its adapters: who issued what, listed by parent.

The SQLite table has the DynamoDB table's attributes, keys (FQDN, ParentFQDN) and its
`parent-index` (ParentFQDN, FQDN), so every adapter pages the same way: by FQDN within a parent.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from chalicelib.aws import aws_error_code, aws_errors
from chalicelib.errors import StorageError
from chalicelib.model import NO_FILTER, CertType, ChildFilter, InventoryItem, InventoryPage

ATTRIBUTES = (
    "FQDN", "ParentFQDN", "Type", "ValidUntil", "Serial", "NotAfter", "KeyType",
    "Fingerprint", "CreatedAt", "Status", "AcmCertificateArn", "Generation",
)  # fmt: skip
NUMBER_ATTRIBUTES = frozenset({"Generation"})
"""Numbers in DynamoDB (compared as numbers); every other attribute is a string."""
_INSERT = (
    "INSERT INTO inventory (FQDN, ParentFQDN, Type, ValidUntil, Serial, NotAfter, KeyType, "
    "Fingerprint, CreatedAt, Status, AcmCertificateArn, Generation) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_SELECT = (
    "SELECT FQDN, ParentFQDN, Type, ValidUntil, Serial, NotAfter, KeyType, Fingerprint, "
    "CreatedAt, Status, AcmCertificateArn, Generation FROM inventory "
)
_GENERATION_FIELDS = ("Serial", "NotAfter", "ValidUntil", "KeyType", "Fingerprint", "Generation")
_RECORD_GENERATION = (
    "UPDATE inventory SET Serial = ?, NotAfter = ?, ValidUntil = ?, KeyType = ?, "
    "Fingerprint = ?, Generation = ?, AcmCertificateArn = COALESCE(?, AcmCertificateArn) "
    "WHERE FQDN = ? AND ParentFQDN = ? AND Generation < ?"
)
_SELECT_CHILDREN = (
    _SELECT + "WHERE ParentFQDN = ? AND FQDN > ? "
    "AND (? IS NULL OR NotAfter <= ?) AND (? IS NULL OR Status = ?) ORDER BY FQDN LIMIT ?"
)
_UPDATE_STATUS = "UPDATE inventory SET Status = ? WHERE FQDN = ? AND ParentFQDN = ?"
_SET_ARN = (
    "UPDATE inventory SET AcmCertificateArn = ? "
    "WHERE FQDN = ? AND ParentFQDN = ? AND AcmCertificateArn IS NULL"
)
_SELECT_ONE = _SELECT + "WHERE FQDN = ? AND ParentFQDN = ?"


def item_values(item: InventoryItem) -> tuple[str | int | None, ...]:
    """The item's values in the order of ATTRIBUTES (the SQLite columns)."""
    return (
        item.fqdn, item.parent_fqdn, item.cert_type.value, item.valid_until, item.serial,
        item.not_after, item.key_type, item.fingerprint, item.created_at, item.status,
        item.acm_certificate_arn, item.generation,
    )  # fmt: skip


def _generation_values(item: InventoryItem) -> tuple[str | int, ...]:
    """The values a renewal changes, in the order of _GENERATION_FIELDS."""
    return (
        item.serial, item.not_after, item.valid_until, item.key_type, item.fingerprint,
        item.generation,
    )  # fmt: skip


def item_to_attributes(item: InventoryItem) -> dict[str, str | int]:
    """The item as DynamoDB attribute names to values (None values left out)."""
    return {
        name: value
        for name, value in zip(ATTRIBUTES, item_values(item), strict=True)
        if value is not None
    }


def item_to_dynamo(item: InventoryItem) -> dict[str, dict[str, str]]:
    """The item as a DynamoDB `Item` (typed attribute values)."""
    return {name: _to_dynamo(name, value) for name, value in item_to_attributes(item).items()}


def item_from_attributes(attributes: dict[str, Any]) -> InventoryItem:
    return InventoryItem(
        fqdn=attributes["FQDN"],
        parent_fqdn=attributes["ParentFQDN"],
        cert_type=CertType(attributes["Type"]),
        valid_until=attributes["ValidUntil"],
        serial=attributes["Serial"],
        not_after=attributes["NotAfter"],
        key_type=attributes["KeyType"],
        fingerprint=attributes["Fingerprint"],
        created_at=attributes["CreatedAt"],
        status=attributes["Status"],
        acm_certificate_arn=attributes.get("AcmCertificateArn"),
        generation=int(attributes.get("Generation", 1)),
    )


def _page(items: list[InventoryItem], limit: int, more: bool) -> InventoryPage:
    """Adapters fetch limit + 1 items: the extra one only tells that more follow."""
    kept = items[:limit]
    more = more or len(items) > limit
    return InventoryPage(items=kept, last_fqdn=kept[-1].fqdn if more and kept else None)


class Inventory(Protocol):
    def record_certificate(self, item: InventoryItem) -> bool:
        """Add the item unless it is there already; True when it was new (idempotent)."""

    def list_children(
        self,
        parent_fqdn: str,
        limit: int,
        after: str | None,
        child_filter: ChildFilter = NO_FILTER,
    ) -> InventoryPage:
        """Up to `limit` matching children of `parent_fqdn` by FQDN, starting after `after`."""

    def update_status(self, fqdn: str, parent_fqdn: str, status: str) -> bool:
        """Set the item's status; False when there is no such item."""

    def set_acm_certificate_arn(self, fqdn: str, parent_fqdn: str, arn: str) -> bool:
        """Give the item the ARN it lacks; False when there is no such item or it has one."""

    def record_generation(self, item: InventoryItem) -> bool:
        """Move the item to `item`'s generation (serial, validity, key, fingerprint, and the ACM
        ARN when given) if it is at an earlier one; False when there is no such item or it is
        at this generation or a later one (a replayed or late event changes nothing)."""

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        """The item, or None when the inventory has none for this key."""

    def contains(self, fqdn: str, parent_fqdn: str) -> bool: ...

    def batch(self) -> AbstractContextManager[object]:
        """Writes inside commit together where the adapter can (one SQLite transaction); a
        no-op where each write stands alone (DynamoDB, in memory)."""


class InMemoryInventory:
    """For unit tests: same contract, kept in sorted lists per parent."""

    def __init__(self) -> None:
        self._children: dict[str, list[str]] = {}
        self._items: dict[tuple[str, str], InventoryItem] = {}
        self._lock = threading.Lock()

    def record_certificate(self, item: InventoryItem) -> bool:
        key = (item.fqdn, item.parent_fqdn)
        with self._lock:
            if key in self._items:
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
        return _page(matching, limit, more=False)

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

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        return self._items.get((fqdn, parent_fqdn))

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        return (fqdn, parent_fqdn) in self._items

    def batch(self) -> AbstractContextManager[object]:
        return nullcontext()


def _rollback(connection: sqlite3.Connection) -> None:
    """Roll back what is open; SQLite may already have rolled back on an I/O error."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


class SqliteInventory:
    """SQLite in WAL mode, one connection per thread.

    The table is clustered on (ParentFQDN, FQDN): that pair is its primary key, as (FQDN,
    ParentFQDN) is DynamoDB's, and its order is `parent-index`'s, so one b-tree serves both the
    key and the listing and an insert writes one page instead of three. (Stores made before keep
    their table with a separate `parent-index`; the same statements serve both.)
    """

    def __init__(self, path: Path, durable: bool = False) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database
        # file's mode, and would create the database itself 0644 less the umask.
        os.close(os.open(self._path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._synchronous = "FULL" if durable else "NORMAL"
        self._local = threading.local()
        connection = self._connection()
        connection.execute(
            "CREATE TABLE IF NOT EXISTS inventory ("
            "FQDN TEXT NOT NULL, ParentFQDN TEXT NOT NULL, Type TEXT NOT NULL, "
            "ValidUntil TEXT NOT NULL, Serial TEXT NOT NULL, NotAfter TEXT NOT NULL, "
            "KeyType TEXT NOT NULL, Fingerprint TEXT NOT NULL, CreatedAt TEXT NOT NULL, "
            "Status TEXT NOT NULL, AcmCertificateArn TEXT, "
            "Generation INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (ParentFQDN, FQDN)) WITHOUT ROWID"
        )
        columns = {row[1] for row in connection.execute("PRAGMA table_info(inventory)")}
        if "Generation" not in columns:  # made before renewals: every item is a first generation
            connection.execute(
                "ALTER TABLE inventory ADD COLUMN Generation INTEGER NOT NULL DEFAULT 1"
            )

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            self._local.connection = connection
        return connection

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes inside commit together (one transaction); nested batches join the outer one.

        If SQLite rolls the transaction back on its own (disk full, I/O error), later writes of
        the batch are refused rather than committed one by one, and leaving it raises.
        """
        connection = self._connection()
        if connection.in_transaction:
            yield
            return
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StorageError(f"could not start an inventory transaction: {err}") from err
        self._local.in_batch = True
        try:
            yield
        except BaseException:
            _rollback(connection)
            raise
        finally:
            self._local.in_batch = False
        if not connection.in_transaction:
            raise StorageError("the inventory batch was rolled back after a failed write")
        try:
            connection.execute("COMMIT")
        except sqlite3.Error as err:
            _rollback(connection)
            raise StorageError(f"could not commit the inventory: {err}") from err

    def _write(self, sql: str, parameters: tuple[Any, ...], what: str, fqdn: str) -> int:
        """Run one write; the number of rows it changed. `what` names it in errors, with
        `{fqdn}` filled in only then (a bulk writes a thousand)."""
        connection = self._connection()
        if getattr(self._local, "in_batch", False) and not connection.in_transaction:
            failed = what.format(fqdn=fqdn)
            raise StorageError(f"{failed}: the inventory batch was already rolled back")
        try:
            return connection.execute(sql, parameters).rowcount
        except sqlite3.Error as err:
            raise StorageError(f"{what.format(fqdn=fqdn)}: {err}") from err

    def _query(self, sql: str, parameters: tuple[Any, ...]) -> list[InventoryItem]:
        try:
            rows = self._connection().execute(sql, parameters).fetchall()
        except sqlite3.Error as err:
            raise StorageError(f"inventory query failed: {err}") from err
        return [item_from_attributes(dict(zip(ATTRIBUTES, row, strict=True))) for row in rows]

    def record_certificate(self, item: InventoryItem) -> bool:
        what = "could not record {fqdn} in the inventory"
        return self._write(_INSERT, item_values(item), what, item.fqdn) == 1

    def list_children(
        self,
        parent_fqdn: str,
        limit: int,
        after: str | None,
        child_filter: ChildFilter = NO_FILTER,
    ) -> InventoryPage:
        until, status = child_filter.not_after_until, child_filter.status
        parameters = (parent_fqdn, after or "", until, until, status, status, limit + 1)
        return _page(self._query(_SELECT_CHILDREN, parameters), limit, more=False)

    def update_status(self, fqdn: str, parent_fqdn: str, status: str) -> bool:
        parameters = (status, fqdn, parent_fqdn)
        what = "could not update the inventory item of {fqdn}"
        return self._write(_UPDATE_STATUS, parameters, what, fqdn) == 1

    def set_acm_certificate_arn(self, fqdn: str, parent_fqdn: str, arn: str) -> bool:
        what = "could not set the ACM ARN of {fqdn} in the inventory"
        return self._write(_SET_ARN, (arn, fqdn, parent_fqdn), what, fqdn) == 1

    def record_generation(self, item: InventoryItem) -> bool:
        parameters = (
            *_generation_values(item), item.acm_certificate_arn, item.fqdn, item.parent_fqdn,
            item.generation,
        )  # fmt: skip
        what = "could not record the renewal of {fqdn} in the inventory"
        return self._write(_RECORD_GENERATION, parameters, what, item.fqdn) == 1

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        items = self._query(_SELECT_ONE, (fqdn, parent_fqdn))
        return items[0] if items else None

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        return self.find(fqdn, parent_fqdn) is not None


class DynamoInventory:
    """The DynamoDB table of DESIGN section 5; children are read through the parent index."""

    def __init__(self, client: Any, table: str, index: str = "parent-index") -> None:
        self._client = client
        self._table = table
        self._index = index

    def record_certificate(self, item: InventoryItem) -> bool:
        attributes = item_to_dynamo(item)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=attributes,
                ConditionExpression="attribute_not_exists(FQDN)",
            )
        except aws_errors() as err:
            if aws_error_code(err) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"could not record {item.fqdn} in the inventory: {err}") from err
        return True

    def list_children(
        self,
        parent_fqdn: str,
        limit: int,
        after: str | None,
        child_filter: ChildFilter = NO_FILTER,
    ) -> InventoryPage:
        """Queries the index, fetching limit + 1 matches; filters apply after DynamoDB's Limit,
        so a filtered listing may query several times to fill a page."""
        arguments = self._query_arguments(parent_fqdn, after, child_filter, limit + 1)
        items: list[InventoryItem] = []
        while True:
            response = self._query(arguments, parent_fqdn)
            items += [_from_dynamo(item) for item in response.get("Items", [])]
            last_key = response.get("LastEvaluatedKey")
            if len(items) > limit or last_key is None:
                # A page cut short by DynamoDB's 1 MB limit also has a LastEvaluatedKey.
                return _page(items, limit, more=last_key is not None)
            if not child_filter.not_after_until and not child_filter.status:
                return _page(items, limit, more=True)
            arguments = {**arguments, "ExclusiveStartKey": last_key}

    def _query_arguments(
        self, parent_fqdn: str, after: str | None, child_filter: ChildFilter, limit: int
    ) -> dict[str, Any]:
        condition = "ParentFQDN = :parent" + (" AND FQDN > :after" if after else "")
        values = {":parent": {"S": parent_fqdn}}
        if after:
            values[":after"] = {"S": after}
        filters = []
        if child_filter.not_after_until is not None:
            filters.append("NotAfter <= :until")
            values[":until"] = {"S": child_filter.not_after_until}
        if child_filter.status is not None:
            filters.append("#status = :status")
            values[":status"] = {"S": child_filter.status}
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": self._index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if filters:
            arguments["FilterExpression"] = " AND ".join(filters)
        if child_filter.status is not None:
            arguments["ExpressionAttributeNames"] = {"#status": "Status"}
        return arguments

    def _query(self, arguments: dict[str, Any], parent_fqdn: str) -> dict[str, Any]:
        try:
            return self._client.query(**arguments)
        except aws_errors() as err:
            raise StorageError(f"could not list the children of {parent_fqdn}: {err}") from err

    def update_status(self, fqdn: str, parent_fqdn: str, status: str) -> bool:
        return self._update_existing(
            fqdn, parent_fqdn, "SET #status = :value", "", {"#status": "Status"}, status,
            "could not update the inventory item of",
        )  # fmt: skip

    def set_acm_certificate_arn(self, fqdn: str, parent_fqdn: str, arn: str) -> bool:
        return self._update_existing(
            fqdn, parent_fqdn, "SET AcmCertificateArn = :value",
            " AND attribute_not_exists(AcmCertificateArn)", {}, arn,
            "could not set the ACM ARN of",
        )  # fmt: skip

    def record_generation(self, item: InventoryItem) -> bool:
        fields = dict(zip(_GENERATION_FIELDS, _generation_values(item), strict=True))
        if item.acm_certificate_arn:
            fields["AcmCertificateArn"] = item.acm_certificate_arn
        values = {f":{name}": _to_dynamo(name, value) for name, value in fields.items()}
        return self._update_existing(
            item.fqdn, item.parent_fqdn,
            "SET " + ", ".join(f"{name} = :{name}" for name in fields),
            " AND (attribute_not_exists(Generation) OR Generation < :Generation)", {}, values,
            "could not record the renewal in the inventory of",
        )  # fmt: skip

    def _update_existing(
        self,
        fqdn: str,
        parent_fqdn: str,
        update: str,
        condition: str,
        names: dict[str, str],
        value: str | dict[str, Any],
        failure: str,
    ) -> bool:
        """One conditional update of an existing item; False when the condition fails.
        `value` is `:value`, or all the expression's values by name."""
        values = {":value": {"S": value}} if isinstance(value, str) else value
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"FQDN": {"S": fqdn}, "ParentFQDN": {"S": parent_fqdn}},
            "UpdateExpression": update,
            "ConditionExpression": "attribute_exists(FQDN)" + condition,
            "ExpressionAttributeValues": values,
        }
        if names:
            arguments["ExpressionAttributeNames"] = names
        try:
            self._client.update_item(**arguments)
        except aws_errors() as err:
            if aws_error_code(err) == "ConditionalCheckFailedException":
                return False
            raise StorageError(f"{failure} {fqdn}: {err}") from err
        return True

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"FQDN": {"S": fqdn}, "ParentFQDN": {"S": parent_fqdn}},
            )
        except aws_errors() as err:
            raise StorageError(f"could not read the inventory item of {fqdn}: {err}") from err
        return _from_dynamo(response["Item"]) if "Item" in response else None

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        return self.find(fqdn, parent_fqdn) is not None

    def batch(self) -> AbstractContextManager[object]:
        return nullcontext()


def _to_dynamo(name: str, value: str | int) -> dict[str, str]:
    return {"N": str(value)} if name in NUMBER_ATTRIBUTES else {"S": str(value)}


def _from_dynamo(item: dict[str, dict[str, str]]) -> InventoryItem:
    return item_from_attributes(
        {name: value["N"] if "N" in value else value["S"] for name, value in item.items()}
    )

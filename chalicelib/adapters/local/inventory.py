"""The local inventory: SQLite in WAL mode, next to the certificate store."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chalicelib.adapters.inventory_items import (
    ATTRIBUTES,
    expiring_page,
    generation_values,
    item_from_attributes,
    item_values,
    page,
)
from chalicelib.errors import StorageError
from chalicelib.model import (
    NO_FILTER,
    ChildFilter,
    ExpiringPage,
    ExpiryCursor,
    InventoryItem,
    InventoryPage,
)

_INSERT = (
    "INSERT INTO inventory (FQDN, ParentFQDN, Type, ValidUntil, Serial, NotAfter, KeyType, "
    "Fingerprint, CreatedAt, Status, AcmCertificateArn, Generation) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_SELECT = (
    "SELECT FQDN, ParentFQDN, Type, ValidUntil, Serial, NotAfter, KeyType, Fingerprint, "
    "CreatedAt, Status, AcmCertificateArn, Generation FROM inventory "
)
_RECORD_GENERATION = (
    "UPDATE inventory SET Serial = ?, NotAfter = ?, ValidUntil = ?, KeyType = ?, "
    "Fingerprint = ?, Generation = ?, AcmCertificateArn = COALESCE(?, AcmCertificateArn) "
    "WHERE FQDN = ? AND ParentFQDN = ? AND Generation < ? AND Status <> 'deleted'"
)
_SELECT_CHILDREN = (
    _SELECT + "WHERE ParentFQDN = ? AND FQDN > ? "
    "AND Status <> 'deleted' AND (? IS NULL OR NotAfter <= ?) AND (? IS NULL OR Status = ?) "
    "ORDER BY FQDN LIMIT ?"
)
_SELECT_EXPIRING = (
    _SELECT + "INDEXED BY expiring WHERE Status = 'active' AND NotAfter >= ? AND NotAfter <= ? "
    "AND (NotAfter, FQDN, ParentFQDN) > (?, ?, ?) ORDER BY NotAfter, FQDN, ParentFQDN LIMIT ?"
)
_EXPIRING_INDEX = (
    "CREATE INDEX IF NOT EXISTS expiring ON inventory (NotAfter, FQDN, ParentFQDN) "
    "WHERE Status = 'active'"
)
"""The active items by NotAfter: a partial index, so revoked ones are not in it at all."""
_MARK_NOTICE = (
    "UPDATE inventory SET LastNotice = ? WHERE FQDN = ? AND ParentFQDN = ? "
    "AND Status = 'active' AND (LastNotice IS NULL OR LastNotice < ?)"
)
_UPDATE_STATUS = (
    "UPDATE inventory SET Status = ? WHERE FQDN = ? AND ParentFQDN = ? AND Status <> 'deleted'"
)
_SET_ARN = (
    "UPDATE inventory SET AcmCertificateArn = ? "
    "WHERE FQDN = ? AND ParentFQDN = ? AND AcmCertificateArn IS NULL AND Status <> 'deleted'"
)
_SELECT_ONE = _SELECT + "WHERE FQDN = ? AND ParentFQDN = ? AND Status <> 'deleted'"
_REMOVE = (
    "UPDATE inventory SET Status = 'deleted' "
    "WHERE FQDN = ? AND ParentFQDN = ? AND Status <> 'deleted'"
)
_IS_REMOVED = "SELECT 1 FROM inventory WHERE FQDN = ? AND ParentFQDN = ? AND Status = 'deleted'"


WAL_ATTEMPTS = 50
"""Tries at switching a new database to WAL while another process holds it (0.1 s apart)."""


def _use_wal(connection: sqlite3.Connection) -> None:
    """WAL mode, which a database keeps once set. Switching needs the database to itself, and
    SQLite answers "locked" at once rather than wait (its busy timeout does not apply) when two
    workers open a new store together: the switch is tried again."""
    for attempt in range(WAL_ATTEMPTS):
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.1)


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
        connection.execute(_EXPIRING_INDEX)
        columns = {row[1] for row in connection.execute("PRAGMA table_info(inventory)")}
        if "Generation" not in columns:  # made before renewals: every item is a first generation
            connection.execute(
                "ALTER TABLE inventory ADD COLUMN Generation INTEGER NOT NULL DEFAULT 1"
            )
        if "LastNotice" not in columns:  # the day of the last expiry notice (none yet)
            try:
                connection.execute("ALTER TABLE inventory ADD COLUMN LastNotice TEXT")
            except sqlite3.OperationalError as err:
                if "duplicate column" not in str(err):  # another worker added it first: done
                    raise

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            _use_wal(connection)
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
        return page(self._query(_SELECT_CHILDREN, parameters), limit, more=False)

    def list_expiring(
        self, since: str, until: str, limit: int, after: ExpiryCursor | None
    ) -> ExpiringPage:
        start = (after.not_after, after.fqdn, after.parent_fqdn) if after else ("", "", "")
        items = self._query(_SELECT_EXPIRING, (since, until, *start, limit + 1))
        return expiring_page(items, limit, more=False, read=len(items))

    def mark_expiry_notice(self, fqdn: str, parent_fqdn: str, day: str) -> bool:
        what = "could not note the expiry notice of {fqdn}"
        return self._write(_MARK_NOTICE, (day, fqdn, parent_fqdn, day), what, fqdn) == 1

    def update_status(self, fqdn: str, parent_fqdn: str, status: str) -> bool:
        parameters = (status, fqdn, parent_fqdn)
        what = "could not update the inventory item of {fqdn}"
        return self._write(_UPDATE_STATUS, parameters, what, fqdn) == 1

    def set_acm_certificate_arn(self, fqdn: str, parent_fqdn: str, arn: str) -> bool:
        what = "could not set the ACM ARN of {fqdn} in the inventory"
        return self._write(_SET_ARN, (arn, fqdn, parent_fqdn), what, fqdn) == 1

    def record_generation(self, item: InventoryItem) -> bool:
        parameters = (
            *generation_values(item), item.acm_certificate_arn, item.fqdn, item.parent_fqdn,
            item.generation,
        )  # fmt: skip
        what = "could not record the renewal of {fqdn} in the inventory"
        return self._write(_RECORD_GENERATION, parameters, what, item.fqdn) == 1

    def remove_item(self, fqdn: str, parent_fqdn: str) -> bool:
        what = "could not remove the inventory item of {fqdn}"
        return self._write(_REMOVE, (fqdn, parent_fqdn), what, fqdn) == 1

    def is_removed(self, fqdn: str, parent_fqdn: str) -> bool:
        try:
            row = self._connection().execute(_IS_REMOVED, (fqdn, parent_fqdn)).fetchone()
        except sqlite3.Error as err:
            raise StorageError(f"could not read the inventory item of {fqdn}: {err}") from err
        return row is not None

    def find(self, fqdn: str, parent_fqdn: str) -> InventoryItem | None:
        items = self._query(_SELECT_ONE, (fqdn, parent_fqdn))
        return items[0] if items else None

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        return self.find(fqdn, parent_fqdn) is not None

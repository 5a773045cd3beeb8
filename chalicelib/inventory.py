"""Inventory port and its adapters: who issued what, listed by parent.

The SQLite table has the DynamoDB table's attributes, keys (FQDN, ParentFQDN) and its
`parent-index` (ParentFQDN, FQDN), so both adapters page the same way: by FQDN within a parent.
"""

from __future__ import annotations

import sqlite3
import threading
from bisect import bisect_right
from pathlib import Path
from typing import Protocol

from chalicelib.errors import StorageError
from chalicelib.model import CertType, InventoryItem, InventoryPage

_INSERT = (
    "INSERT INTO inventory (FQDN, ParentFQDN, Type, ValidUntil, Serial, NotAfter, KeyType, "
    "Fingerprint, CreatedAt, Status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (FQDN, ParentFQDN) DO NOTHING"
)
_SELECT_CHILDREN = (
    "SELECT FQDN, ParentFQDN, Type, ValidUntil, Serial, NotAfter, KeyType, Fingerprint, "
    'CreatedAt, Status FROM inventory INDEXED BY "parent-index" '
    "WHERE ParentFQDN = ? AND FQDN > ? ORDER BY FQDN LIMIT ?"
)


def _item_to_row(item: InventoryItem) -> tuple[str, ...]:
    return (
        item.fqdn,
        item.parent_fqdn,
        item.cert_type.value,
        item.valid_until,
        item.serial,
        item.not_after,
        item.key_type,
        item.fingerprint,
        item.created_at,
        item.status,
    )


def _row_to_item(row: tuple[str, ...]) -> InventoryItem:
    (
        fqdn,
        parent,
        cert_type,
        valid_until,
        serial,
        not_after,
        key_type,
        fingerprint,
        created,
        status,
    ) = row
    return InventoryItem(
        fqdn=fqdn,
        parent_fqdn=parent,
        cert_type=CertType(cert_type),
        valid_until=valid_until,
        serial=serial,
        not_after=not_after,
        key_type=key_type,
        fingerprint=fingerprint,
        created_at=created,
        status=status,
    )


class Inventory(Protocol):
    def record_certificate(self, item: InventoryItem) -> bool:
        """Add the item unless it is there already; True when it was new (idempotent)."""

    def list_children(self, parent_fqdn: str, limit: int, after: str | None) -> InventoryPage:
        """Up to `limit` children of `parent_fqdn` ordered by FQDN, starting after `after`."""

    def contains(self, fqdn: str, parent_fqdn: str) -> bool: ...


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

    def list_children(self, parent_fqdn: str, limit: int, after: str | None) -> InventoryPage:
        children = self._children.get(parent_fqdn, [])
        start = bisect_right(children, after) if after is not None else 0
        names = children[start : start + limit + 1]
        items = [self._items[(name, parent_fqdn)] for name in names[:limit]]
        last = items[-1].fqdn if len(names) > limit else None
        return InventoryPage(items=items, last_fqdn=last)

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        return (fqdn, parent_fqdn) in self._items


class SqliteInventory:
    """SQLite in WAL mode, one connection per thread (the local server is threaded)."""

    def __init__(self, path: Path, durable: bool = False) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._synchronous = "FULL" if durable else "NORMAL"
        self._local = threading.local()
        with self._connection() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS inventory ("
                "FQDN TEXT NOT NULL, ParentFQDN TEXT NOT NULL, Type TEXT NOT NULL, "
                "ValidUntil TEXT NOT NULL, Serial TEXT NOT NULL, NotAfter TEXT NOT NULL, "
                "KeyType TEXT NOT NULL, Fingerprint TEXT NOT NULL, CreatedAt TEXT NOT NULL, "
                "Status TEXT NOT NULL, PRIMARY KEY (FQDN, ParentFQDN))"
            )
            connection.execute(
                'CREATE INDEX IF NOT EXISTS "parent-index" ON inventory (ParentFQDN, FQDN)'
            )

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self._synchronous}")
            self._local.connection = connection
        return connection

    def record_certificate(self, item: InventoryItem) -> bool:
        try:
            cursor = self._connection().execute(_INSERT, _item_to_row(item))
        except sqlite3.Error as err:
            raise StorageError(f"could not record {item.fqdn} in the inventory: {err}") from err
        return cursor.rowcount == 1

    def list_children(self, parent_fqdn: str, limit: int, after: str | None) -> InventoryPage:
        try:
            cursor = self._connection().execute(
                _SELECT_CHILDREN, (parent_fqdn, after or "", limit + 1)
            )
            rows = cursor.fetchall()
        except sqlite3.Error as err:
            raise StorageError(f"could not list the children of {parent_fqdn}: {err}") from err
        items = [_row_to_item(row) for row in rows[:limit]]
        return InventoryPage(items=items, last_fqdn=items[-1].fqdn if len(rows) > limit else None)

    def contains(self, fqdn: str, parent_fqdn: str) -> bool:
        row = (
            self._connection()
            .execute(
                "SELECT 1 FROM inventory WHERE FQDN = ? AND ParentFQDN = ?", (fqdn, parent_fqdn)
            )
            .fetchone()
        )
        return row is not None

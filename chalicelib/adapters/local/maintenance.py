"""What `make fsck` needs of the local backend's files beyond the ports: the temporary files
of interrupted writes, the inventory database's own integrity, and moving a corrupt file aside
(into `.corrupt/` under the store, kept for inspection) so that it can be written anew."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from chalicelib.adapters.local.store import TEMP_PREFIX

LEFTOVER_AGE_SECONDS = 60
"""A named temporary file younger than this may be a write in progress (of a running server on
a file system without O_TMPFILE): it is neither reported nor removed."""
CORRUPT_DIRECTORY = ".corrupt"
INVENTORY_FILE = "inventory.sqlite3"


class LocalMaintenance:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.inventory_path = self.root / INVENTORY_FILE

    def temporary_files(self, older_than: float = LEFTOVER_AGE_SECONDS) -> list[Path]:
        """Named temporary files of interrupted writes: untouched for `older_than` seconds."""
        cutoff = time.time() - older_than
        return sorted(
            path
            for directory, directories, names in os.walk(self.root)
            for name in names
            if name.startswith(TEMP_PREFIX)
            and CORRUPT_DIRECTORY not in Path(directory).relative_to(self.root).parts
            and (path := Path(directory) / name).stat().st_mtime < cutoff
        )

    def inventory_problem(self) -> str | None:
        """What is wrong with the inventory database, if anything (SQLite's own check)."""
        if not self.inventory_path.exists():
            return None
        try:
            connection = sqlite3.connect(f"file:{self.inventory_path}?mode=ro", uri=True)
            try:
                rows = connection.execute("PRAGMA quick_check").fetchall()
                connection.execute("SELECT count(*) FROM inventory").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as err:
            return str(err)
        verdicts = [row[0] for row in rows]
        return None if verdicts == ["ok"] else "; ".join(verdicts)

    def set_inventory_aside(self) -> Path:
        """Move the database (and its WAL files) into `.corrupt/`; the next use creates a new
        one, which `make fsck --repair` fills from the certificates."""
        target = self._aside(INVENTORY_FILE)
        for suffix in ("", "-wal", "-shm", "-journal"):
            source = self.root / f"{INVENTORY_FILE}{suffix}"
            if source.exists():
                source.rename(target.with_name(target.name + suffix))
        return target

    def set_document_aside(self, key: str) -> Path:
        """Move a corrupt document into `.corrupt/`: its key is free to be written again."""
        target = self._aside(key.replace("/", "__"))
        (self.root / key).rename(target)
        return target

    def modified_at(self, key: str) -> float:
        return (self.root / key).stat().st_mtime

    def _aside(self, name: str) -> Path:
        directory = self.root / CORRUPT_DIRECTORY
        directory.mkdir(mode=0o700, exist_ok=True)
        return directory / f"{name}.{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"

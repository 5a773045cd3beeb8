"""Who is using a local store: every server serving it holds a shared lock on `<store>/.serving`
for as long as it runs (its workers and their signing processes inherit it); `make clean-store`
takes the lock exclusively, so it refuses a store a server is serving, and a server cannot start
on a store being removed.

    python3 -m chalicelib.adapters.local.serving clean DIR

Standard library only: `make clean-store` runs it with any Python 3, without the virtualenv.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import sys
from pathlib import Path
from typing import IO

LOCK_NAME = ".serving"
STORE_ENTRIES = re.compile(
    r"certificates|revocations|inventory\.sqlite3(-wal|-shm|-journal)?|\.tmp-.*|\.corrupt|"
    + re.escape(LOCK_NAME)
    + r"|\.expiry-scan"
)
"""What a local store holds: anything else in the directory means it is not only a store."""


class StoreInUse(Exception):
    """The store is being served, or being removed."""


def hold_while_serving(store: Path) -> IO[str]:
    """The shared lock a server holds on its store; keep the returned file open while serving."""
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = _open_lock(store)
    try:
        fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StoreInUse(
            f"{store} is being removed (make clean-store): start again once it is done"
        ) from None
    return lock


def clean(store: Path) -> str:
    """Remove the store, unless a server serves it or it holds what a store never holds."""
    if not store.exists():
        return f"no {store}"
    if not store.is_dir():
        raise StoreInUse(f"{store} is not a certificate store; nothing removed")
    foreign = sorted(
        entry.name for entry in store.iterdir() if not STORE_ENTRIES.fullmatch(entry.name)
    )
    if foreign:
        raise StoreInUse(
            f"{store} is not only a certificate store ({' '.join(foreign)}); nothing removed"
        )
    with _open_lock(store) as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUse(
                f"a server is serving {store}: stop it first; nothing removed"
            ) from None
        shutil.rmtree(store)
    return f"removed {store}"


def _open_lock(store: Path) -> IO[str]:
    descriptor = os.open(store / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    return os.fdopen(descriptor, "r+")


def main(arguments: list[str]) -> int:
    if len(arguments) != 2 or arguments[0] != "clean":
        print("usage: python3 -m chalicelib.adapters.local.serving clean DIR", file=sys.stderr)
        return 2
    try:
        print(f"clean-store: {clean(Path(arguments[1]))}")
    except StoreInUse as refused:
        print(f"clean-store: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

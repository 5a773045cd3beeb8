"""The local store's modes, as the README promises them: directories 0700, files 0600, the SQLite
inventory and its -wal and -shm files included, whatever the umask lets through."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import CELL1, SERVER_CA, ApiClient, create_hierarchy


@pytest.fixture(params=[0o022, 0o000], ids=["umask-022", "umask-000"])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_the_local_store_creates_directories_0700_and_files_0600(
    permissive_umask: int, api: ApiClient, certstore: Path
) -> None:
    assert not certstore.exists()  # made by the first request, under this umask
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)
    server = api.create("server", fqdn=f"mqtt.{SERVER_CA}")
    revoked = api.post(f"/certificates/{device['fqdn']}/revoke", {"reason": "keyCompromise"})
    renewed = api.post(f"/certificates/{server['fqdn']}/renew", {})
    assert (revoked.status_code, renewed.status_code) == (200, 201), (revoked, renewed)

    modes = {
        str(path.relative_to(certstore)): stat.S_IMODE(path.stat().st_mode)
        for path in [certstore, *certstore.rglob("*")]
    }
    directories = {name for name in modes if (certstore / name).is_dir()}
    assert {"certificates", "revocations", f"revocations/{CELL1}",
            f"certificates/{server['fqdn']}"} <= directories  # fmt: skip
    assert {"inventory.sqlite3", "inventory.sqlite3-wal", "inventory.sqlite3-shm"} <= set(modes)
    wrong = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode != (0o700 if name in directories else 0o600)
    }
    assert wrong == {}

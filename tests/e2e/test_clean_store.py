"""`make clean-store`: the walk-through runs again on an emptied store, and a directory holding
anything the store never makes is left alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.docs import walkthrough_script
from tests.helpers import PROJECT_ROOT
from tests.servers import LocalServer


def clean_store(store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "clean-store", f"CERTSTORE_DIR={store}"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("make") is None,
    reason="curl and make are needed",
)
def test_the_walkthrough_prints_its_error_and_runs_again_after_make_clean_store(
    tmp_path: Path,
) -> None:
    store = tmp_path / "certstore"

    def walk(server: LocalServer) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", walkthrough_script()], cwd=tmp_path,
            env=dict(os.environ, API=server.url), capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    with LocalServer(store, tmp_path / "server.log", workers=1) as server:
        first = walk(server)
        assert first.returncode == 0, first.stderr + server.log()
        first_root = json.loads((tmp_path / "root.json").read_text())
        second = walk(server)
    assert second.returncode != 0
    errors = [json.loads(line) for line in second.stderr.splitlines() if line.startswith("{")]
    assert [error["Code"] for error in errors] == ["ConflictError"], second.stderr
    assert "example.com" in errors[0]["Message"]

    cleaned = clean_store(store)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not store.exists()
    with LocalServer(store, tmp_path / "server.log", workers=1) as server:
        third = walk(server)
    assert third.returncode == 0, third.stderr + server.log()
    assert json.loads((tmp_path / "root.json").read_text())["serial"] != first_root["serial"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_clean_store_refuses_a_directory_holding_anything_else(tmp_path: Path) -> None:
    store = tmp_path / "certstore"
    (store / "certificates").mkdir(parents=True)
    (store / "inventory.sqlite3").write_bytes(b"")
    (store / "notes.txt").write_text("mine")

    refused = clean_store(store)

    assert refused.returncode != 0
    assert "notes.txt" in refused.stderr and "nothing removed" in refused.stderr
    assert sorted(path.name for path in store.iterdir()) == [
        "certificates", "inventory.sqlite3", "notes.txt"
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_clean_store_refuses_a_store_a_server_is_serving(tmp_path: Path) -> None:
    store = tmp_path / "certstore"
    with LocalServer(store, tmp_path / "server.log", workers=1) as server:
        created = requests.post(f"{server.url}/certificates/root", json={"fqdn": "kept.example"})
        assert created.status_code == 201, created.text
        refused = clean_store(store)
        assert refused.returncode != 0
        assert "a server is serving" in refused.stderr and "nothing removed" in refused.stderr
        # Nothing was removed: the server still lists and refuses to overwrite what it holds.
        listed = requests.get(f"{server.url}/certificates").json()["items"]
        assert [item["fqdn"] for item in listed] == ["kept.example"]
        again = requests.post(f"{server.url}/certificates/root", json={"fqdn": "kept.example"})
        assert again.status_code == 409
    cleaned = clean_store(store)
    assert cleaned.returncode == 0, cleaned.stderr
    assert not store.exists()

"""`make run`'s expiry scan: at start, in one worker of two, an `expiring` notice (logged) for
each active certificate within EXPIRY_NOTICE_DAYS; a restart the same day sends none again."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests

from tests.servers import LocalServer

CELL = "cell.scan.example"
TIMEOUT = 10


def _post(server: LocalServer, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{server.url}/certificates/{kind}", json=body, timeout=TIMEOUT)
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def _lines(server: LocalServer, key: str) -> list[dict[str, Any]]:
    found = []
    for line in server.log().splitlines():
        if line.startswith("{") and f'"{key}"' in line:
            found.append(json.loads(line))
    return found


def _scan_done(server: LocalServer) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done = _lines(server, "job")
        if done:
            return done[0]
        time.sleep(0.05)
    raise AssertionError("no expiry scan in the log:\n" + server.log()[-3000:])


def test_the_server_scans_at_start_in_one_worker_and_once_a_day(tmp_path: Path) -> None:
    store = tmp_path / "certstore"
    with LocalServer(store, tmp_path / "setup.log", EXPIRY_SCAN_HOURS="0") as setup:
        _post(setup, "root", {"fqdn": "scan.example"})
        _post(setup, "intermediate", {"fqdn": CELL})
        soon = [_post(setup, "device", {"parent_fqdn": CELL, "validity_days": 10})
                for _ in range(3)]  # fmt: skip
        _post(setup, "device", {"parent_fqdn": CELL, "validity_days": 200})  # outside
        _post(setup, f"{soon[2]['fqdn']}/revoke", {})
    assert _lines(setup, "job") == []  # EXPIRY_SCAN_HOURS=0: no scan

    with LocalServer(store, tmp_path / "first.log", EXPIRY_NOTICE_DAYS="30") as first:
        assert first.workers == 2
        assert _scan_done(first) == {**_scan_done(first), "notices": 2}
        time.sleep(0.5)  # the other worker had its chance at the lock
        assert len(_lines(first, "job")) == 1  # one worker scans
    notices = [line for line in _lines(first, "audit") if line["audit"] == "expiring"]
    assert sorted(notice["fqdn"] for notice in notices) == sorted(d["fqdn"] for d in soon[:2])
    assert {notice["parent_fqdn"] for notice in notices} == {CELL}
    assert {notice["days_left"] for notice in notices} <= {9, 10}

    with LocalServer(store, tmp_path / "again.log") as again:  # the same day
        assert _scan_done(again)["notices"] == 0

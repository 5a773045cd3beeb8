"""Several workers share one store: a revocation acknowledged by one is honoured by all at once,
and a bulk that is running when its CA is revoked stops signing and says so."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.api.fields import MAX_BULK_BY_KEY_TYPE
from devtools.procfs import cpu_ticks, descendants
from tests.servers import LocalServer

ROOT = "example.com"
DEVICES = "devices.example.com"
CELL = "cell1.devices.example.com"
RSA_BULK = MAX_BULK_BY_KEY_TYPE["RSA_2048"]  # the largest accepted: it runs for seconds


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(tmp_path / "certstore", tmp_path / "server.log", workers=2) as started:
        for kind, body in (
            ("root", {"fqdn": ROOT}),
            ("intermediate", {"fqdn": DEVICES, "path_length": 1}),
            ("intermediate", {"fqdn": CELL}),
        ):
            created = requests.post(f"{started.url}/certificates/{kind}", json=body, timeout=30)
            assert created.status_code == 201, created.text
        yield started


def _issue_on_new_connections(url: str, parent: str, count: int) -> list[int]:
    """`count` device requests, each on a connection of its own, eight at a time."""

    def issue(_: int) -> int:
        response = requests.post(
            f"{url}/certificates/device",
            json={"parent_fqdn": parent},
            headers={"Connection": "close"},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(issue, range(count)))


def test_an_acknowledged_revocation_stops_issuance_in_every_worker(server: LocalServer) -> None:
    workers = server.worker_pids()
    assert len(workers) == 2
    # Both workers load and check the CAs first (each keeps them in its memory).
    assert set(_issue_on_new_connections(server.url, CELL, 40)) == {201}

    revoked = requests.post(
        f"{server.url}/certificates/{DEVICES}/revoke", json={"reason": "keyCompromise"}, timeout=30
    )
    assert revoked.status_code == 200, revoked.text
    ticks_before = {pid: cpu_ticks(pid) for pid in workers}
    refused = _issue_on_new_connections(server.url, CELL, 60)
    ticks_after = {pid: cpu_ticks(pid) for pid in workers}

    assert refused == [409] * 60  # under the revoked CA's child, from whichever worker
    assert all(ticks_after[pid] > ticks_before[pid] for pid in workers), "one worker was idle"
    answer = requests.post(
        f"{server.url}/certificates/device", json={"parent_fqdn": CELL}, timeout=30
    ).json()
    assert f"CA {DEVICES} was revoked" in answer["Message"]


@pytest.mark.slow
def test_a_bulk_running_when_its_ca_is_revoked_stops_and_says_so(server: LocalServer) -> None:
    outcome: dict[str, Any] = {}

    def bulk() -> None:
        response = requests.post(
            f"{server.url}/certificates/device",
            json={"parent_fqdn": CELL, "count": RSA_BULK, "key_type": "RSA_2048"},
            timeout=120,
        )
        outcome["status"], outcome["body"] = response.status_code, response.json()

    running = threading.Thread(target=bulk)
    running.start()
    time.sleep(1.0)  # RSA keys take far longer than this for the whole bulk
    revoked = _revoke_beside(server, CELL, running)
    running.join(timeout=120)

    assert revoked is not None, "every revocation sent waited behind the bulk"
    # 200, or 409 "already revoked": an earlier round's revocation, answered after the client
    # stopped waiting for it (a loaded machine), landed while the bulk ran
    assert revoked.status_code == 200 or "is already revoked" in revoked.text, revoked.text
    assert outcome["status"] == 409, outcome["body"]
    message = outcome["body"]["Message"]
    found = re.search(r"; (\d+) certificates of this bulk were stored before that.*, (\d+) stored "
                      r"after it were revoked with it", message)  # fmt: skip
    assert found is not None, message
    confirmed, revoked_with_it = int(found.group(1)), int(found.group(2))
    assert 0 < confirmed + revoked_with_it < RSA_BULK
    listed = requests.get(f"{server.url}/certificates?parent={CELL}&limit=1000", timeout=30).json()[
        "items"
    ]
    stored = list((server.certstore / "certificates").glob(f"*.{CELL}.json"))
    assert len(listed) == len(stored) == confirmed + revoked_with_it
    assert {item["status"] for item in listed} == {"revoked"}  # below a revoked CA
    # whatever was stored after the revocation was filed carries a revocation of its own
    filed = (server.certstore / "revocations" / DEVICES / f"{CELL}.json").stat().st_mtime
    own = server.certstore / "revocations" / CELL
    late = [path.name for path in stored if path.stat().st_mtime > filed]
    assert all((own / name).exists() for name in late), late
    assert len(list(own.glob("*.json"))) == revoked_with_it


def _revoke_beside(
    server: LocalServer, fqdn: str, bulk: threading.Thread
) -> requests.Response | None:
    """The revocation, answered while `bulk` runs. A new connection reaches either worker, and a
    request that reaches the one busy with the bulk waits for it (docs/operations.md), so each
    round sends the revocation on three new connections at once and takes the first answer
    within half a second (the chance that all three reach the busy worker is 1 in 8 a round);
    those left waiting run after the bulk and find the CA revoked already. A 409 "already revoked"
    while the bulk still runs says that one sent before, whose answer came too late, landed."""

    def revoke(_: int) -> requests.Response | None:
        try:
            return requests.post(
                f"{server.url}/certificates/{fqdn}/revoke",
                json={},
                headers={"Connection": "close"},
                timeout=(5, 0.5),
            )
        except requests.ReadTimeout:
            return None

    with ThreadPoolExecutor(3) as pool:
        while bulk.is_alive():
            answered = [answer for answer in pool.map(revoke, range(3)) if answer is not None]
            revoked = [answer for answer in answered if answer.status_code == 200]
            if revoked:
                return revoked[0]
            if answered:
                return answered[0]  # an answer, but no 200: the test says what it was
    return None


def test_a_creation_race_across_workers_gives_exactly_one_201(server: LocalServer) -> None:
    def create(_: int) -> int:
        return requests.post(
            f"{server.url}/certificates/server",
            json={"fqdn": f"race.{DEVICES}"},
            headers={"Connection": "close"},
            timeout=30,
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(create, range(8)))

    assert statuses == [201] + [409] * 7
    stored = server.certstore / "certificates" / f"race.{DEVICES}.json"
    assert stored.exists()


def test_ctrl_c_after_pooled_bulks_stops_every_process_of_the_server(server: LocalServer) -> None:
    """The workers' signing pools are stopped with them (ASGI lifespan shutdown): without that,
    a worker would wait for its pool's processes until the server killed it."""
    for _ in range(2):  # the first bulk starts the pool, the second is signed by it
        bulk = requests.post(
            f"{server.url}/certificates/device", json={"parent_fqdn": CELL, "count": 64}, timeout=60
        )
        assert bulk.status_code == 201, bulk.text
    assert server.process is not None
    group = server.process.pid
    assert len(descendants(group)) > len(server.worker_pids())  # pool processes are running

    server.process.send_signal(signal.SIGINT)
    returncode = server.process.wait(timeout=10)

    assert returncode == 0
    deadline = time.monotonic() + 10  # the last ones see their parent gone within a second
    while _group_members(group) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(group) == []


def _group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(int(entry.name)) == group:
                    members.append(int(entry.name))
    return members

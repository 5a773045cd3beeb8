"""kill -9 of the local server, or of one of its workers, mid-stream loses no acknowledged
certificate, and `make fsck` tidies up what the crash left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import PROJECT_ROOT
from tests.servers import LocalServer

CELL = "cell.example.com"
pytestmark = pytest.mark.slow  # a server started, issuing for seconds, then killed


class IssuingClients:
    """Three clients issuing devices, each on a keep-alive connection, until stopped; when a
    connection breaks they give up, or with `reconnect` go on with a new one (a worker died, its
    master lives). `acknowledged` holds every certificate answered with a 201."""

    def __init__(self, url: str, reconnect: bool = False) -> None:
        self.acknowledged: list[dict[str, Any]] = []
        self._url = url
        self._reconnect = reconnect
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._issue) for _ in range(3)]
        for thread in self._threads:
            thread.start()

    def _issue(self) -> None:
        session = requests.Session()
        while not self._stop.is_set():
            try:
                response = session.post(
                    f"{self._url}/certificates/device", json={"parent_fqdn": CELL}, timeout=10
                )
            except requests.RequestException:
                if not self._reconnect:
                    return  # the server is gone
                session = requests.Session()
                continue
            if response.status_code == 201:
                self.acknowledged.append(response.json())

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def _create_cell(url: str) -> None:
    for kind, body in (("root", {"fqdn": "example.com"}), ("intermediate", {"fqdn": CELL})):
        assert requests.post(f"{url}/certificates/{kind}", json=body, timeout=10).ok


def _listed(url: str, parent: str) -> set[str]:
    names: set[str] = set()
    token = None
    while True:
        query = f"parent={parent}&limit=1000" + (f"&next_token={token}" if token else "")
        page = requests.get(f"{url}/certificates?{query}", timeout=10).json()
        names |= {item["fqdn"] for item in page["items"]}
        token = page["next_token"]
        if token is None:
            return names


def _fsck(certstore: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.fsck", *arguments],
        cwd=PROJECT_ROOT, env=dict(os.environ, CERTSTORE_DIR=str(certstore), BACKEND="local"),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_sigkill_mid_stream_keeps_every_acknowledged_certificate(tmp_path: Path) -> None:
    certstore = tmp_path / "certstore"
    server = LocalServer(certstore, tmp_path / "server.log")
    server.start()
    _create_cell(server.url)
    clients = IssuingClients(server.url)
    clients.wait_for(150)
    server.kill()  # master and workers at once, with requests in flight on three connections
    clients.stop()
    acknowledged = clients.acknowledged
    assert len(acknowledged) >= 150, server.log()

    with LocalServer(certstore, tmp_path / "restarted.log") as restarted:
        for certificate in acknowledged:
            fetched = requests.get(
                f"{restarted.url}/certificates/{certificate['fqdn']}", timeout=10
            )
            assert fetched.status_code == 200, certificate["fqdn"]
            assert fetched.json()["serial"] == certificate["serial"]
        assert {c["fqdn"] for c in acknowledged} <= _listed(restarted.url, CELL) | {
            line.split(": ", 1)[1]
            for line in _fsck(certstore).stdout.splitlines()
            if line.startswith("certificate without an up-to-date inventory item: ")
        }

        repaired = _fsck(certstore, "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert _fsck(certstore).stdout.strip() == "fsck: clean"

        files = sorted((certstore / "certificates").iterdir())
        assert not [path for path in files if path.name.startswith(".tmp-")]
        stored = set()
        for path in files:  # every file is a complete document: no half-written certificate
            document = json.loads(path.read_text())
            stored.add(document["fqdn"])
        listed = _listed(restarted.url, CELL)
        assert listed == stored - {"example.com", CELL}
        assert {c["fqdn"] for c in acknowledged} <= listed


def test_sigkill_of_one_worker_loses_nothing_and_the_server_serves_on(tmp_path: Path) -> None:
    certstore = tmp_path / "certstore"
    with LocalServer(certstore, tmp_path / "server.log", workers=2) as server:
        _create_cell(server.url)
        clients = IssuingClients(server.url, reconnect=True)
        clients.wait_for(100)
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        count_at_kill = len(clients.acknowledged)
        clients.wait_for(count_at_kill + 100)  # those that lost their connection reconnect
        clients.stop()
        acknowledged = clients.acknowledged

        assert victim not in server.worker_pids()
        assert len(server.worker_pids()) == 2, "the master starts a new worker"
        assert len(acknowledged) >= count_at_kill + 100, server.log()
        repaired = _fsck(certstore, "--repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        listed = _listed(server.url, CELL)
        for certificate in acknowledged:
            fetched = requests.get(f"{server.url}/certificates/{certificate['fqdn']}", timeout=10)
            assert fetched.json()["serial"] == certificate["serial"]
        assert {c["fqdn"] for c in acknowledged} <= listed
        assert _fsck(certstore).stdout.strip() == "fsck: clean"

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

import requests

from tests.conftest import PROJECT_ROOT, LocalServer

CELL = "cell.example.com"


def _issue_until_stopped(
    url: str, acknowledged: list[dict[str, Any]], stop: threading.Event, reconnect: bool = False
) -> None:
    """Issue devices on one keep-alive connection until `stop`; when the connection breaks,
    give up, or with `reconnect` go on with a new one (a worker died, its master lives)."""
    session = requests.Session()
    while not stop.is_set():
        try:
            response = session.post(
                f"{url}/certificates/device", json={"parent_fqdn": CELL}, timeout=10
            )
        except requests.RequestException:
            if not reconnect:
                return  # the server is gone
            session = requests.Session()
            continue
        if response.status_code == 201:
            acknowledged.append(response.json())


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
    for kind, body in (("root", {"fqdn": "example.com"}), ("intermediate", {"fqdn": CELL})):
        assert requests.post(f"{server.url}/certificates/{kind}", json=body, timeout=10).ok
    acknowledged: list[dict[str, Any]] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=_issue_until_stopped, args=(server.url, acknowledged, stop))
        for _ in range(3)
    ]
    for client in clients:
        client.start()
    deadline = time.monotonic() + 30
    while len(acknowledged) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.kill()  # master and workers at once, with requests in flight on three connections
    stop.set()
    for client in clients:
        client.join(timeout=30)
    assert len(acknowledged) >= 150, server.log()

    restarted = LocalServer(certstore, tmp_path / "restarted.log")
    restarted.start()
    try:
        for certificate in acknowledged:
            fetched = requests.get(
                f"{restarted.url}/certificates/{certificate['fqdn']}", timeout=10
            )
            assert fetched.status_code == 200, certificate["fqdn"]
            assert fetched.json()["serial"] == certificate["serial"]
        assert {c["fqdn"] for c in acknowledged} <= _listed(restarted.url, CELL) | {
            line.split(": ", 1)[1]
            for line in _fsck(certstore).stdout.splitlines()
            if line.startswith("certificate without inventory item: ")
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
    finally:
        restarted.stop()


def test_sigkill_of_one_worker_loses_nothing_and_the_server_serves_on(tmp_path: Path) -> None:
    certstore = tmp_path / "certstore"
    server = LocalServer(certstore, tmp_path / "server.log", workers=2)
    server.start()
    try:
        for kind, body in (("root", {"fqdn": "example.com"}), ("intermediate", {"fqdn": CELL})):
            assert requests.post(f"{server.url}/certificates/{kind}", json=body, timeout=10).ok
        acknowledged: list[dict[str, Any]] = []
        stop = threading.Event()
        clients = [
            threading.Thread(
                target=_issue_until_stopped, args=(server.url, acknowledged, stop, True)
            )
            for _ in range(3)
        ]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        count_at_kill = len(acknowledged)
        while len(acknowledged) < count_at_kill + 100 and time.monotonic() < deadline + 30:
            time.sleep(0.01)  # the clients that lost their connection reconnect
        stop.set()
        for client in clients:
            client.join(timeout=30)

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
    finally:
        server.stop()

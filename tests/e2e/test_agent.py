"""`iotcert agent` against the server `make run` starts: it installs a broker's files, renews
them when `--renew-at` says, atomically, runs `--exec`, leaves them alone far from expiry, makes
keys on the device when asked, stops on SIGTERM, and a mosquitto it reloads presents the new
certificate."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devtools.ports import free_port
from iotcert.agent import Agent
from iotcert.client import connect
from tests.helpers import PROJECT_ROOT, run_iotcert, verify_server
from tests.servers import LocalServer

TIMEOUT = 10
MOSQUITTO = shutil.which("mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    directory = tmp_path_factory.mktemp("agent-server")
    with LocalServer(directory / "certstore", directory / "server.log") as started:
        response = requests.post(
            f"{started.url}/certificates/root", json={"fqdn": "agent.example"}, timeout=TIMEOUT
        )
        assert response.status_code == 201, response.text
        yield started


@pytest.fixture
def broker(server: LocalServer, request: pytest.FixtureRequest) -> str:
    """A broker certificate of the test's own (named after the test)."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    fqdn = f"{name}.agent.example"
    body = {"fqdn": fqdn, "sans": ["localhost"]}
    response = requests.post(f"{server.url}/certificates/server", json=body, timeout=TIMEOUT)
    assert response.status_code == 201, response.text
    return fqdn


def agent(server: LocalServer, fqdn: str, directory: Path, *options: str) -> str:
    result = run_iotcert(server.url, "agent", fqdn, str(directory), *options, cwd=directory.parent)
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout


def installed(directory: Path) -> tuple[x509.Certificate, Any]:
    certificate = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / "key.pem").read_bytes(), None)
    assert key.public_key() == certificate.public_key()  # a matching pair
    return certificate, key


def current(server: LocalServer, fqdn: str) -> dict[str, Any]:
    return dict(requests.get(f"{server.url}/certificates/{fqdn}", timeout=TIMEOUT).json())


def test_installs_then_renews_when_due_and_runs_exec(
    server: LocalServer, broker: str, tmp_path: Path
) -> None:
    files = tmp_path / "broker"
    output = agent(server, broker, files, "--once")
    assert f"holds {broker} serial {current(server, broker)['serial']}" in output
    first, _ = installed(files)
    root = (files / "ca.pem").read_text()
    for name in ("cert.pem", "chain.pem", "fullchain.pem", "key.pem", "ca.pem"):
        assert (files / name).is_symlink() and os.readlink(files / name) == f".live/{name}"
    assert (files / "key.pem").stat().st_mode & 0o777 == 0o600
    assert os.stat(files).st_mode & 0o777 == 0o700

    assert "renewed" not in agent(
        server, broker, files, "--once"
    )  # far from expiry: nothing changes
    assert installed(files)[0].serial_number == first.serial_number
    assert current(server, broker)["generation"] == 1

    marker = tmp_path / "reloaded"
    output = agent(server, broker, files, "--once", "--renew-at", "0", "--exec", f"touch {marker}")
    renewed, _ = installed(files)
    assert renewed.serial_number != first.serial_number
    assert f"serial {format(first.serial_number, 'x')} -> {format(renewed.serial_number, 'x')}" in (
        output
    )
    assert marker.exists() and f"ran touch {marker} (exit status 0)" in output
    assert current(server, broker)["serial"] == format(renewed.serial_number, "x")
    verify_server({"certificate": (files / "cert.pem").read_text(),
                   "chain": (files / "chain.pem").read_text()}, root, broker)  # fmt: skip
    assert len(list((files / ".generations").iterdir())) == 2  # in use, and the one before

    output = agent(server, broker, files, "--once", "--renew-at", "0", "--key-on-device")
    on_device, key = installed(files)
    serial = format(on_device.serial_number, "x")
    assert serial != format(renewed.serial_number, "x")
    stored = requests.get(
        f"{server.url}/certificates/{broker}/private-key", params={"serial": serial}, timeout=10
    )
    assert stored.status_code == 404  # the service never had this key
    assert key.public_key() == on_device.public_key()


def test_a_renewal_killed_before_its_swap_leaves_the_old_matching_pair(
    server: LocalServer, broker: str, tmp_path: Path
) -> None:
    files = tmp_path / "broker"
    agent(server, broker, files, "--once")
    before, _ = installed(files)

    class Killed(Agent):
        def _swap_live(self, target: Path) -> None:
            raise KeyboardInterrupt  # as a kill between the new files and the switch

    client = connect(server.url)
    with pytest.raises(KeyboardInterrupt):
        Killed(client, broker, files, renew_at=0.0, say=lambda _: None).check()
    after, _ = installed(files)  # still the old certificate, with its own key
    assert after.serial_number == before.serial_number
    assert len(list((files / ".generations").iterdir())) == 2  # the new one, written, unused
    Agent(client, broker, files, renew_at=0.0, say=lambda _: None).check()  # the next run
    assert installed(files)[0].serial_number != before.serial_number


def test_the_daemon_stops_cleanly_on_sigterm(
    server: LocalServer, broker: str, tmp_path: Path
) -> None:
    files = tmp_path / "broker"
    environment = {**os.environ, "IOTCERT_API": server.url, "PYTHONPATH": str(PROJECT_ROOT)}
    with subprocess.Popen(
        [sys.executable, "-m", "iotcert", "agent", broker, str(files)],
        cwd=tmp_path, env=environment, stdout=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        assert process.stdout is not None
        assert f"holds {broker} serial" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 0
        assert process.stdout.read().strip() == "agent: stopped"
    installed(files)


@pytest.mark.skipif(MOSQUITTO is None, reason="needs mosquitto (Debian: apt install mosquitto)")
def test_a_broker_reloaded_by_the_agent_presents_the_new_certificate(
    server: LocalServer, broker: str, tmp_path: Path
) -> None:
    assert MOSQUITTO is not None
    files = tmp_path / "broker"
    agent(server, broker, files, "--once")
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(
        f"user {os.environ.get('USER') or 'root'}\nlistener {port} localhost\n"
        f"cafile {files}/ca.pem\ncertfile {files}/fullchain.pem\nkeyfile {files}/key.pem\n"
    )
    log = tmp_path / "mosquitto.log"
    with log.open("wb") as stream:
        mosquitto = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=stream)
    try:
        deadline = time.monotonic() + TIMEOUT
        while " running" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        before = presented_serial(port, files)
        assert before == installed(files)[0].serial_number
        agent(
            server,
            broker,
            files,
            "--once",
            "--renew-at",
            "0",
            "--exec",
            f"kill -HUP {mosquitto.pid}",
        )
        renewed = installed(files)[0].serial_number
        assert renewed != before
        deadline = time.monotonic() + TIMEOUT
        while presented_serial(port, files) != renewed and time.monotonic() < deadline:
            time.sleep(0.1)
        assert presented_serial(port, files) == renewed, log.read_text()
    finally:
        mosquitto.terminate()
        mosquitto.wait(timeout=TIMEOUT)


def presented_serial(port: int, files: Path) -> int:
    """The serial of the certificate the broker presents, as `openssl s_client` sees it."""
    shown = subprocess.run(
        ["openssl", "s_client", "-connect", f"localhost:{port}", "-CAfile", str(files / "ca.pem"),
         "-verify_return_error", "-servername", "localhost"],
        input="", capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    match = re.search(
        r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", shown.stdout, re.S
    )
    assert match, shown.stdout + shown.stderr
    return x509.load_pem_x509_certificate(match.group(0).encode()).serial_number

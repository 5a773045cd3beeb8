"""The README's walk-through with the CLI, run as written: iotcert against the server `make run`
starts, then mosquitto with the broker's files and a device publishing to it over mutual TLS."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from devtools.ports import free_port
from tests.conftest import PROJECT_ROOT, LocalServer
from tests.e2e.test_readme_walkthrough import readme_bash_blocks
from tests.helpers import run_iotcert

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)
MOSQUITTO_PUB = shutil.which("mosquitto_pub", path=_SEARCH_PATH)

pytestmark = pytest.mark.skipif(
    MOSQUITTO is None or MOSQUITTO_PUB is None or shutil.which("python3") is None,
    reason="the walk-through needs mosquitto and mosquitto_pub (Debian: apt install mosquitto "
    "mosquitto-clients) and python3",
)


def cli_walkthrough_script() -> str:
    return readme_bash_blocks("## The same with the CLI", 1)


def _environment(bin_dir: Path, api: str, mqtt_port: int) -> dict[str, str]:
    """`iotcert` on PATH (as `.venv/bin` would put it), with mosquitto's directories."""
    bin_dir.mkdir()
    shim = bin_dir / "iotcert"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m iotcert "$@"\n')
    shim.chmod(0o755)
    assert MOSQUITTO is not None and MOSQUITTO_PUB is not None
    path = [str(bin_dir), str(Path(MOSQUITTO).parent), str(Path(MOSQUITTO_PUB).parent)]
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("IOTCERT")
    }
    return {
        **inherited,
        "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")]),
        "PYTHONPATH": str(PROJECT_ROOT),
        "IOTCERT_API": api,
        "MQTT_PORT": str(mqtt_port),
    }


def _common_name(certificate: Path) -> str:
    subject = x509.load_pem_x509_certificate(certificate.read_bytes()).subject
    return str(subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)


@contextlib.contextmanager
def _broker(workdir: Path, log: Path) -> Iterator[None]:
    """mosquitto with the walk-through's mosquitto.conf, until it listens."""
    assert MOSQUITTO is not None
    with log.open("wb") as stream:
        process = subprocess.Popen([MOSQUITTO, "-c", "mosquitto.conf"], cwd=workdir, stderr=stream)
    try:
        deadline = time.monotonic() + 10
        while " running" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def _publish(workdir: Path, port: int, files: str) -> subprocess.CompletedProcess[str]:
    """A device's hello with the files in `files`, trusting the broker (device/ca.pem)."""
    assert MOSQUITTO_PUB is not None
    return subprocess.run(
        [MOSQUITTO_PUB, "-h", "localhost", "-p", str(port), "--cafile", "device/ca.pem",
         "--cert", f"{files}/fullchain.pem", "--key", f"{files}/key.pem",
         "-t", "devices/hello", "-m", "hi"],
        cwd=workdir, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def test_readme_cli_walkthrough_connects_a_device_to_mosquitto(
    local_server: LocalServer, tmp_path: Path
) -> None:
    workdir = tmp_path / "walkthrough"
    workdir.mkdir()
    port = free_port()
    result = subprocess.run(
        ["bash", "-c", cli_walkthrough_script()],
        cwd=workdir,
        env=_environment(tmp_path / "bin", local_server.url, port),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout + local_server.log()
    device_id = _common_name(workdir / "device" / "cert.pem")
    accepted = f"u'{device_id}'"  # mosquitto's log names a client by its username, here the CN
    assert accepted in (workdir / "mosquitto.log").read_text()
    assert accepted in result.stdout  # the walk-through's own grep
    assert "│   └── cell1.devices.example.com (Intermediate, until " in result.stdout  # tree
    assert "└── servers.example.com (Intermediate, until " in result.stdout
    assert (workdir / "broker" / "key.pem").stat().st_mode & 0o777 == 0o600

    # The same broker again: a device of another root is refused, the walk-through's accepted.
    for arguments in (
        ["create", "root", "stranger.example.net"],
        ["create", "device", "--parent", "stranger.example.net", "--out-dir", "stranger"],
    ):
        created = run_iotcert(local_server.url, *arguments, cwd=workdir)
        assert created.returncode == 0, created.stderr
    log = workdir / "controls.log"
    with _broker(workdir, log):
        refused = _publish(workdir, port, "stranger")
        again = _publish(workdir, port, "device")
    assert refused.returncode != 0
    assert again.returncode == 0, again.stderr + log.read_text()
    broker_log = log.read_text()
    assert f"u'{_common_name(workdir / 'stranger' / 'cert.pem')}'" not in broker_log
    assert "certificate verify failed" in broker_log
    assert accepted in broker_log

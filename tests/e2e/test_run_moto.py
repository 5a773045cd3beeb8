"""`make run-moto`: the `make run` server on the `dev` stage against a local moto server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from devtools.aws_resources import AWS_ENVIRONMENT
from devtools.ports import free_port, wait_for_port
from devtools.run_moto import EventPump
from tests.backends import moto_account
from tests.docs import walkthrough_script
from tests.helpers import PROJECT_ROOT, verify_client

MOTO_REQUEST_LINE = '"POST / HTTP/1.1" 200'
"""What werkzeug logs for each AWS call moto answers (creating the resources makes several)."""


def run_moto(port: int, moto_port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "devtools.run_moto", "--port", str(port),
            "--moto-port", str(moto_port), *options]  # fmt: skip


@contextlib.contextmanager
def moto_launcher(log_path: Path, *options: str, moto_port: int | None = None) -> Iterator[str]:
    """`make run-moto` on free ports (moto's is `moto_port` if given); its API's URL. Its output
    goes to `log_path`."""
    port, moto_port = free_port(), moto_port or free_port()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            run_moto(port, moto_port, *options),
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for_port(port, process, timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert process.returncode == 0, log_path.read_text(errors="replace")


@pytest.fixture
def moto_server_api(tmp_path: Path) -> Iterator[str]:
    log_path = tmp_path / "run-moto.log"
    with moto_launcher(log_path) as url:
        yield url
    assert MOTO_REQUEST_LINE not in log_path.read_text(errors="replace")  # moto's log is off


def test_dev_stage_runs_against_a_local_moto_server(moto_server_api: str) -> None:
    session = requests.Session()
    root = session.post(f"{moto_server_api}/certificates/root", json={"fqdn": "example.com"})
    assert root.status_code == 201, root.text
    cell = session.post(
        f"{moto_server_api}/certificates/intermediate", json={"fqdn": "cell1.example.com"}
    )
    assert cell.status_code == 201, cell.text
    device = session.post(
        f"{moto_server_api}/certificates/device", json={"parent_fqdn": "cell1.example.com"}
    ).json()
    verify_client(device, root.json()["certificate"])
    fetched = session.get(f"{moto_server_api}/certificates/{device['fqdn']}").json()
    assert fetched["serial"] == device["serial"]

    listed: list[str] = []
    for _ in range(100):  # the inventory follows the events: eventually consistent
        items = session.get(f"{moto_server_api}/certificates?parent=cell1.example.com").json()
        listed = [item["fqdn"] for item in items["items"]]
        if listed:
            break
        time.sleep(0.1)
    assert listed == [device["fqdn"]]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_walkthrough_runs_against_the_moto_backend(
    moto_server_api: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        ["bash", "-c", walkthrough_script()],
        cwd=tmp_path,
        env=dict(os.environ, API=moto_server_api),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    root_pem = (tmp_path / "root.pem").read_text()
    device = {
        "certificate": (tmp_path / "device.pem").read_text(),
        "chain": (tmp_path / "device-chain.pem").read_text(),
    }
    verify_client(device, root_pem)


def test_the_event_pump_dead_letters_a_failing_event_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with moto_account(monkeypatch, AWS_ENVIRONMENT) as (session, resources):
        events = session.client("events")
        bus = AWS_ENVIRONMENT["EVENT_BUS_NAME"]
        for name in ("first.example.com", "poison.example.com", "third.example.com"):
            detail = json.dumps({"FQDN": name})
            entry = {"Source": "certificates", "DetailType": "created", "Detail": detail}
            events.put_events(Entries=[{**entry, "EventBusName": bus}])
        handled: list[str] = []

        def handler(envelope: dict[str, Any], context: object) -> None:
            if envelope["detail"]["FQDN"] == "poison.example.com":
                raise ValueError("malformed detail")
            handled.append(envelope["detail"]["FQDN"])

        sqs = session.client("sqs")
        sqs.send_message(QueueUrl=resources["queue_url"], MessageBody="not an event at all")
        pump = EventPump(sqs, resources["queue_url"], handler)
        delivered = sum(pump.pump_once(wait_seconds=0) for _ in range(4))

    assert delivered == 2
    assert sorted(handled) == ["first.example.com", "third.example.com"]
    letters = sorted(json.dumps(letter) for letter in pump.dead_letters)
    assert len(letters) == 2 and '"Body": "not an event at all"' in letters[0]
    assert '"FQDN": "poison.example.com"' in letters[1]


def test_moto_request_log_is_shown_when_asked_for(tmp_path: Path) -> None:
    log_path = tmp_path / "run-moto.log"
    with moto_launcher(log_path, "--moto-log") as url:
        assert requests.get(f"{url}/certificates", timeout=10).status_code == 200
    assert MOTO_REQUEST_LINE in log_path.read_text(errors="replace")


@pytest.mark.parametrize("taken", ["API", "moto"])
def test_a_port_in_use_ends_the_launcher_with_a_message(taken: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        busy = listener.getsockname()[1]
        port, moto_port = (busy, free_port()) if taken == "API" else (free_port(), busy)
        result = subprocess.run(
            run_moto(port, moto_port), cwd=PROJECT_ROOT, capture_output=True, text=True,
            timeout=30,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"port {busy} ({taken}) on 127.0.0.1 is in use" in result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_moto_passes_moto_port_and_moto_log() -> None:
    environment = {  # nor what an outer `make test` passes on (MAKEFLAGS, MAKELEVEL)
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PORT", "MOTO", "MAKE", "MFLAGS"))
    }

    def command(*variables: str) -> str:
        """The launcher's command line, as `make -n` prints it (nothing is run)."""
        dry_run = subprocess.run(
            ["make", "--no-print-directory", "-n", "run-moto", *variables],
            cwd=PROJECT_ROOT, env=environment,
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        words = dry_run.stdout.replace("\\\n", " ").split()
        return " ".join(words[words.index("devtools.run_moto") + 1 :])

    assert command() == "--port 8000 --moto-port 5000"
    assert command("MOTO_PORT=5123", "MOTO_LOG=1") == "--port 8000 --moto-port 5123 --moto-log"
    assert command("MOTO_LOG=0") == "--port 8000 --moto-port 5000"


def test_a_revoked_device_is_revoked_in_moto_s_aws_iot_registry(tmp_path: Path) -> None:
    """The revocation reaches AWS IoT through the event pump, by the certificate ID AWS IoT
    computes (the SHA-256 of the certificate's DER), as it does on AWS."""
    moto_port = free_port()
    with moto_launcher(tmp_path / "run-moto.log", moto_port=moto_port) as api:
        session = requests.Session()
        for kind, body in (("root", {"fqdn": "example.com"}),
                           ("intermediate", {"fqdn": "cell1.example.com"})):  # fmt: skip
            created = session.post(f"{api}/certificates/{kind}", json=body, timeout=30)
            assert created.status_code == 201, created.text
        registered = session.post(
            f"{api}/certificates/cell1.example.com/aws-iot/register", json={}, timeout=30
        )
        assert registered.status_code == 200, registered.text
        device = session.post(
            f"{api}/certificates/device",
            json={"parent_fqdn": "cell1.example.com", "aws_iot": {"register": True, "thing": True}},
            timeout=30,
        ).json()
        certificate_id = device["aws_iot"]["certificate_id"]
        assert device["aws_iot"]["error"] is None, device["aws_iot"]
        iot = boto3.session.Session(**_moto_credentials()).client(
            "iot", endpoint_url=f"http://127.0.0.1:{moto_port}"
        )
        described = iot.describe_certificate(certificateId=certificate_id)
        assert described["certificateDescription"]["status"] == "ACTIVE"

        revoked = session.post(f"{api}/certificates/{device['fqdn']}/revoke", json={}, timeout=30)
        assert revoked.status_code == 200, revoked.text
        status = "ACTIVE"
        for _ in range(100):  # the pump hands the event on within a second or two
            status = iot.describe_certificate(certificateId=certificate_id)[
                "certificateDescription"
            ]["status"]
            if status == "REVOKED":
                break
            time.sleep(0.1)

    assert status == "REVOKED"


def _moto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENVIRONMENT["AWS_DEFAULT_REGION"],
    }

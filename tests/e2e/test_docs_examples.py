"""Every runnable example of the README and docs/, run as written in bash against the server
started as `make run` does: the curl walk-through and what continues it, the CLI's, and a device
on mosquitto, let in and then refused once its cell is revoked."""

from __future__ import annotations

import contextlib
import getpass
import json
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
from devtools.softhsm import Token
from tests.docs import WALKTHROUGH, script
from tests.helpers import load_pem_chain, run_iotcert, verify_client, verify_server
from tests.servers import LocalServer

pytestmark = pytest.mark.slow

_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
MOSQUITTO = shutil.which("mosquitto", path=_SEARCH_PATH)
MOSQUITTO_PUB = shutil.which("mosquitto_pub", path=_SEARCH_PATH)

needs_curl_and_openssl = pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("openssl") is None,
    reason="the examples call curl and openssl (Debian: apt install curl openssl)",
)
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None or MOSQUITTO_PUB is None,
    reason="the example runs mosquitto and mosquitto_pub (Debian: apt install mosquitto "
    "mosquitto-clients)",
)

CLI_WALKTHROUGH = ("docs/cli.md", "## Walk-through: a device on mosquitto")
REVOKED_CELL = ("README.md", "## A revoked cell, cut off a broker")


def environment(tmp_path: Path, api: str) -> dict[str, str]:
    """What a user's shell has: `iotcert` on PATH (as `.venv/bin` puts it), mosquitto's
    directories, `API` and `IOTCERT_API` naming the server; nothing of the caller's IOTCERT_*."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "iotcert"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m iotcert "$@"\n')
    shim.chmod(0o755)
    path = [str(bin_dir)]
    path += [str(Path(tool).parent) for tool in (MOSQUITTO, MOSQUITTO_PUB) if tool is not None]
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("IOTCERT")
    }
    return {
        **inherited,
        "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")]),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "API": api,
        "IOTCERT_API": api,
        "MQTT_PORT": str(free_port()),
    }


def run(
    code: str, server: LocalServer, workdir: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """`code` in bash in `workdir`; it must succeed."""
    workdir.mkdir(exist_ok=True)
    result = subprocess.run(
        ["bash", "-c", code], cwd=workdir, env=environment(tmp_path, server.url),
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout + server.log()
    return result


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@needs_curl_and_openssl
def test_the_readme_walkthrough(local_server: LocalServer, tmp_path: Path) -> None:
    workdir = tmp_path / "walkthrough"
    result = run(script(WALKTHROUGH), local_server, workdir, tmp_path)

    root_pem = (workdir / "root.pem").read_text()
    broker = {name: (workdir / f"broker{suffix}.pem").read_text()
              for name, suffix in (("certificate", ""), ("chain", "-chain"))}  # fmt: skip
    device = {name: (workdir / f"device{suffix}.pem").read_text()
              for name, suffix in (("certificate", ""), ("chain", "-chain"))}  # fmt: skip
    verify_server(broker, root_pem, "mqtt.servers.example.com")
    verify_client(device, root_pem)
    assert [cert.subject.rfc4514_string() for cert in load_pem_chain(broker["chain"])] == [
        "CN=servers.example.com",
        "CN=example.com,O=Example IoT,C=DE",
    ]
    for key in ("broker-key.pem", "device-key.pem"):  # written 0600, whatever the umask
        assert (workdir / key).read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert mode(workdir / key) == 0o600
    device_fqdn = json.loads((workdir / "device.json").read_text())["fqdn"]
    assert device_fqdn.endswith(".cell1.devices.example.com")
    lines = result.stdout.splitlines()
    assert "device.pem: OK" in lines  # openssl verify
    roots, cell = (json.loads(line) for line in lines if line.startswith("{"))
    assert [item["fqdn"] for item in roots["items"]] == ["example.com"]
    assert [item["fqdn"] for item in cell["items"]] == [device_fqdn]


@needs_curl_and_openssl
def test_the_readme_cli_brief_after_the_walkthrough(
    local_server: LocalServer, tmp_path: Path
) -> None:
    workdir = tmp_path / "walkthrough"
    result = run(script(WALKTHROUGH, ("README.md", "## The CLI")), local_server, workdir, tmp_path)
    assert "│   └── cell1.devices.example.com (Intermediate, until " in result.stdout
    assert mode(workdir / "device-files" / "key.pem") == 0o600
    created = x509.load_pem_x509_certificate((workdir / "device-files" / "cert.pem").read_bytes())
    device_id = created.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert f"{device_id}.cell1.devices.example.com" in result.stdout  # the list


@needs_curl_and_openssl
def test_the_readme_renewal_and_revocation(local_server: LocalServer, tmp_path: Path) -> None:
    result = run(
        script(WALKTHROUGH, ("README.md", "## Renewal and revocation")),
        local_server, tmp_path / "walkthrough", tmp_path,
    )  # fmt: skip
    # the device's generation, the cell's, the history's count, the status, the CRL's serials
    assert result.stdout.splitlines()[-5:] == ["2", "2", "2", "revoked", "2"], result.stdout


@needs_curl_and_openssl
def test_the_readme_fleet_cleanup(local_server: LocalServer, tmp_path: Path) -> None:
    result = run(
        script(WALKTHROUGH, ("README.md", "## Cleaning up a test fleet")),
        local_server, tmp_path / "walkthrough", tmp_path,
    )  # fmt: skip
    # revoked; the cell and its three devices deleted; gone; its parent's CRL still lists it
    assert result.stdout.splitlines()[-4:] == ["revoked", "4", "404", "1"], result.stdout


@needs_curl_and_openssl
def test_the_api_fleet_examples(local_server: LocalServer, tmp_path: Path) -> None:
    workdir = tmp_path / "walkthrough"
    result = run(
        script(WALKTHROUGH, ("docs/api.md", "## Fleet features")), local_server, workdir, tmp_path
    )
    lines = result.stdout.splitlines()
    assert "3" in lines  # bulk count
    assert "revoked" in lines
    assert "4" in lines  # certificates in the PKCS#12 file: leaf, cell1, devices, root
    csr_device = json.loads((workdir / "csr-device.json").read_text())
    assert "private_key" not in csr_device
    serial = f"{int(csr_device['serial'], 16):X}"
    assert any(serial in line.replace(":", "") for line in lines), result.stdout
    expiring = json.loads(lines[-1])  # the fleet-wide listing: the devices, a year away
    assert len(expiring["items"]) == 2 and expiring["next_token"]
    assert {item["days_left"] for item in expiring["items"]} <= {364, 365}


@needs_curl_and_openssl
def test_the_api_deletion_example(local_server: LocalServer, tmp_path: Path) -> None:
    result = run(
        script(WALKTHROUGH, ("docs/api.md", "## Deleting certificates")),
        local_server, tmp_path / "walkthrough", tmp_path,
    )  # fmt: skip
    refused, deleted = (json.loads(line) for line in result.stdout.splitlines()[-2:])
    assert refused["Code"] == "ConflictError" and "is not revoked" in refused["Message"]
    assert (deleted["fqdn"], deleted["deleted"]) == ("cell8.devices.example.com", 2)


@needs_curl_and_openssl
def test_the_api_renewal_examples(local_server: LocalServer, tmp_path: Path) -> None:
    workdir = tmp_path / "walkthrough"
    result = run(
        script(WALKTHROUGH, ("docs/api.md", "## Renewal and CA rollover")),
        local_server, workdir, tmp_path,
    )  # fmt: skip
    lines = result.stdout.splitlines()
    # generation, the first one's status, history count, broker generation, openssl, cell1's
    assert lines[-6:] == ["2", "revoked", "2", "2", "device.pem: OK", "1"], result.stdout

    def load(name: str) -> dict[str, object]:
        return json.loads((workdir / name).read_text())

    first, second = load("device.json"), load("device-2.json")
    assert (second["fqdn"], second["previous_serial"]) == (first["fqdn"], first["serial"])
    root_pem = (workdir / "root.pem").read_text()
    verify_client({"certificate": second["certificate"], "chain": second["chain"]}, root_pem)
    old_cell, new_cell = (
        x509.load_pem_x509_certificate(str(load(name)["certificate"]).encode())
        for name in ("cell1-ca.json", "cell1-ca-2.json")
    )
    ski = x509.SubjectKeyIdentifier
    assert old_cell.extensions.get_extension_for_class(ski) == (
        new_cell.extensions.get_extension_for_class(ski)
    )
    assert load("cell2-devices.json")["count"] == 2


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


def _publish(workdir: Path, port: str, files: str) -> subprocess.CompletedProcess[str]:
    """A device's hello with the files in `files`, trusting the broker (device/ca.pem)."""
    assert MOSQUITTO_PUB is not None
    return subprocess.run(
        [MOSQUITTO_PUB, "-h", "localhost", "-p", port, "--cafile", "device/ca.pem",
         "--cert", f"{files}/fullchain.pem", "--key", f"{files}/key.pem",
         "-t", "devices/hello", "-m", "hi"],
        cwd=workdir, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@needs_mosquitto
def test_the_cli_walkthrough_connects_a_device_to_mosquitto(
    local_server: LocalServer, tmp_path: Path
) -> None:
    workdir = tmp_path / "walkthrough"
    result = run(script(CLI_WALKTHROUGH), local_server, workdir, tmp_path)
    device_id = _common_name(workdir / "device" / "cert.pem")
    accepted = f"u'{device_id}'"  # mosquitto's log names a client by its username, here the CN
    assert accepted in (workdir / "mosquitto.log").read_text()
    assert accepted in result.stdout  # the walk-through's own grep
    assert "│   └── cell1.devices.example.com (Intermediate, until " in result.stdout  # tree
    assert "└── servers.example.com (Intermediate, until " in result.stdout
    assert mode(workdir / "broker" / "key.pem") == 0o600

    # The same broker again: a device of another root is refused, the walk-through's accepted.
    for arguments in (
        ["create", "root", "stranger.example.net"],
        ["create", "device", "--parent", "stranger.example.net", "--out-dir", "stranger"],
    ):
        created = run_iotcert(local_server.url, *arguments, cwd=workdir)
        assert created.returncode == 0, created.stderr
    log = workdir / "controls.log"
    port = next(line.split()[1] for line in (workdir / "mosquitto.conf").read_text().splitlines()
                if line.startswith("listener "))  # fmt: skip
    with _broker(workdir, log):
        refused = _publish(workdir, port, "stranger")
        again = _publish(workdir, port, "device")
    assert refused.returncode != 0
    assert again.returncode == 0, again.stderr + log.read_text()
    broker_log = log.read_text()
    assert f"u'{_common_name(workdir / 'stranger' / 'cert.pem')}'" not in broker_log
    assert "certificate verify failed" in broker_log
    assert accepted in broker_log


@needs_mosquitto
def test_a_revoked_cell_is_cut_off_the_broker(local_server: LocalServer, tmp_path: Path) -> None:
    workdir = tmp_path / "walkthrough"
    result = run(script(CLI_WALKTHROUGH, REVOKED_CELL), local_server, workdir, tmp_path)
    lines = result.stdout.splitlines()
    let_in, refused = "the device of cell1 gets in", "the device is refused: cell1 is revoked"
    assert let_in in lines and refused in lines, result.stdout + result.stderr
    assert lines.index(let_in) < lines.index(refused) == len(lines) - 1
    # What refused it: the cell's CRL in the broker's crlfile lists the device's serial.
    crls = x509.load_pem_x509_crl((workdir / "broker" / "crls.pem").read_bytes())
    device = x509.load_pem_x509_certificate((workdir / "device" / "cert.pem").read_bytes())
    assert crls.get_revoked_certificate_by_serial_number(device.serial_number) is not None
    refusal = (workdir / "mosquitto.log").read_text()  # the last run's log
    assert "certificate verify failed" in refusal
    assert f"u'{device.subject.rfc4514_string().removeprefix('CN=')}'" not in refusal


@needs_curl_and_openssl
@needs_mosquitto
def test_the_readme_hsm_example_and_its_device_on_mosquitto(
    softhsm_token: Token, tmp_path: Path
) -> None:
    """The README's CA keys in a SoftHSM2 token, served as `make run HSM=1` serves them: the
    device of the token's cell connects to mosquitto over mutual TLS (a broker of the same root),
    and the token holds each CA key sensitive and not extractable."""
    workdir = tmp_path / "hsm"
    environment = softhsm_token.environment()
    with LocalServer(tmp_path / "certstore", tmp_path / "server.log", **environment) as server:
        result = run(script(("README.md", "## CA keys in an HSM")), server, workdir, tmp_path)
        lines = result.stdout.splitlines()
        assert ["key", "store:", "pkcs11"] in [line.split() for line in lines]
        assert "hsm-device/cert.pem: OK" in lines
        broker = run_iotcert(server.url, "create", "server", "mqtt.hsm.example.com", "--san",
                             "localhost", "--out-dir", "hsm-broker", cwd=workdir)  # fmt: skip
        assert broker.returncode == 0, broker.stderr
        key_ids = {
            ca: json.loads(run_iotcert(server.url, "--json", "show", ca, cwd=workdir).stdout)[
                "key_id"
            ]
            for ca in ("hsm.example.com", "cell1.hsm.example.com")
        }
    port = str(free_port())
    (workdir / "mosquitto.conf").write_text(
        f"user {getpass.getuser()}\nlistener {port} localhost\n"
        f"cafile {workdir}/hsm-broker/ca.pem\ncertfile {workdir}/hsm-broker/fullchain.pem\n"
        f"keyfile {workdir}/hsm-broker/key.pem\nrequire_certificate true\n"
        "use_identity_as_username true\n"
    )
    log = workdir / "mosquitto.log"
    assert MOSQUITTO_PUB is not None
    with _broker(workdir, log):
        published = subprocess.run(
            [MOSQUITTO_PUB, "-h", "localhost", "-p", port, "--cafile", "hsm-device/ca.pem",
             "--cert", "hsm-device/fullchain.pem", "--key", "hsm-device/key.pem",
             "-t", "devices/hello", "-m", "hi"],
            cwd=workdir, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert published.returncode == 0, published.stderr + log.read_text()
    assert f"u'{_common_name(workdir / 'hsm-device' / 'cert.pem')}'" in log.read_text()

    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    token = pkcs11.lib(softhsm_token.module).get_token(token_label=softhsm_token.label)
    with token.open(user_pin=softhsm_token.pin) as session:
        for ca, key_id in key_ids.items():
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(key_id))
            assert key[Attribute.EXTRACTABLE] is False, ca
            assert key[Attribute.SENSITIVE] is True, ca
            assert key[Attribute.LABEL] == f"local/{ca}"
            with pytest.raises(pkcs11.AttributeSensitive):
                key[Attribute.VALUE]

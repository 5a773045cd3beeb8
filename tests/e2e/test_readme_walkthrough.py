"""The README walk-through, run as written against the server started as `make run` does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from tests.conftest import PROJECT_ROOT, LocalServer
from tests.helpers import load_pem_chain, verify_client, verify_server


def readme_bash_blocks(heading: str, count: int) -> str:
    """The bash blocks of the README section under `heading` (a `## ` or `### ` line, up to the
    next heading of that level), joined; there must be `count` of them."""
    level = heading.split(" ", 1)[0]
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.split(f"\n{heading}\n", 1)[1].split(f"\n{level} ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == count, f"{heading}: {len(blocks)} bash blocks, expected {count}"
    return "\n".join(blocks)


def walkthrough_script() -> str:
    return readme_bash_blocks("## Walk-through", 1)


def run_after_walkthrough(
    examples: str, local_server: LocalServer, workdir: Path
) -> subprocess.CompletedProcess[str]:
    """The walk-through, then `examples` in the same shell, against the server; must succeed."""
    result = subprocess.run(
        ["bash", "-c", walkthrough_script() + "\n" + examples],
        cwd=workdir,
        env=dict(os.environ, API=local_server.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout + local_server.log()
    return result


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_walkthrough_runs_against_the_local_server(
    local_server: LocalServer, tmp_path: Path
) -> None:
    workdir = tmp_path / "walkthrough"
    workdir.mkdir()
    result = subprocess.run(
        ["bash", "-c", walkthrough_script()],
        cwd=workdir,
        env=dict(os.environ, API=local_server.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout + local_server.log()

    root_pem = (workdir / "root.pem").read_text()
    broker = {
        "certificate": (workdir / "broker.pem").read_text(),
        "chain": (workdir / "broker-chain.pem").read_text(),
    }
    device = {
        "certificate": (workdir / "device.pem").read_text(),
        "chain": (workdir / "device-chain.pem").read_text(),
    }
    verify_server(broker, root_pem, "mqtt.servers.example.com")
    verify_client(device, root_pem)
    device_fqdn = json.loads((workdir / "device.json").read_text())["fqdn"]
    assert f"device: {device_fqdn}" in result.stdout
    assert device_fqdn.endswith(".cell1.devices.example.com")
    assert '"fqdn":"devices.example.com"' in result.stdout  # example.com's children, via base64
    assert [cert.subject.rfc4514_string() for cert in load_pem_chain(broker["chain"])] == [
        "CN=servers.example.com",
        "CN=example.com,O=Example IoT,C=DE",
    ]
    assert (workdir / "broker-key.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert (local_server.certstore / "certificates" / f"{device_fqdn}.json").exists()

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the README's `openssl verify` line was not run")
    verified = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "device-chain.pem",
            "device.pem",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    leaf = x509.load_pem_x509_certificate(device["certificate"].encode())
    assert leaf.subject.rfc4514_string() == f"CN={device_fqdn.split('.')[0]}"


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("openssl") is None,
    reason="curl and openssl are needed for the README's fleet examples",
)
def test_readme_fleet_examples_run_after_the_walkthrough(
    local_server: LocalServer, tmp_path: Path
) -> None:
    # CSR, bulk, revocation and bundle examples
    result = run_after_walkthrough(
        readme_bash_blocks("### Fleet features", 4), local_server, tmp_path
    )
    lines = result.stdout.splitlines()
    assert "3" in lines  # bulk count
    assert "revoked" in lines
    assert "4" in lines  # certificates in the PKCS#12 file: leaf, cell1, devices, root
    csr_device = json.loads((tmp_path / "csr-device.json").read_text())
    assert "private_key" not in csr_device
    serial = f"{int(csr_device['serial'], 16):X}"
    assert any(serial in line.replace(":", "") for line in lines), result.stdout


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("openssl") is None,
    reason="curl and openssl are needed for the README's renewal examples",
)
def test_readme_renewal_examples_run_after_the_walkthrough(
    local_server: LocalServer, tmp_path: Path
) -> None:
    # renewal and CA rollover, then rotating a cell onto a new key
    result = run_after_walkthrough(
        readme_bash_blocks("### Renewal and CA rollover", 2), local_server, tmp_path
    )
    lines = result.stdout.splitlines()
    # generation, the first one's status, history count, broker generation, openssl, cell1's
    assert lines[-6:] == ["2", "revoked", "2", "2", "device.pem: OK", "1"], result.stdout

    def load(name: str) -> dict[str, object]:
        return json.loads((tmp_path / name).read_text())

    first, second = load("device.json"), load("device-2.json")
    assert (second["fqdn"], second["previous_serial"]) == (first["fqdn"], first["serial"])
    root_pem = (tmp_path / "root.pem").read_text()
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

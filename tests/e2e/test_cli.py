"""`iotcert` end to end, as a user runs it, against the server `make run` starts.

One server for the module; each test builds a PKI under a root of its own.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.verification import VerificationError

from devtools.ports import free_port
from tests.helpers import PROJECT_ROOT, run_iotcert, verify_client, verify_server
from tests.servers import LocalServer

LAYOUT = ["ca.pem", "cert.pem", "chain.pem", "fullchain.pem", "key.pem"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    directory = tmp_path_factory.mktemp("cli-server")
    with LocalServer(directory / "certstore", directory / "server.log") as started:
        yield started


class Cli:
    """iotcert against the module's server, in the test's own directory."""

    def __init__(self, server: LocalServer, directory: Path) -> None:
        self.server = server
        self.directory = directory

    def run(self, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
        return run_iotcert(self.server.url, *args, cwd=self.directory, environment=environment)

    def ok(self, *args: str, **environment: str) -> str:
        result = self.run(*args, **environment)
        assert result.returncode == 0, result.stderr + result.stdout + self.server.log()[-2000:]
        assert result.stderr == ""
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("--json", *args))


@pytest.fixture
def cli(server: LocalServer, tmp_path: Path) -> Cli:
    return Cli(server, tmp_path)


def build_pki(cli: Cli, root: str) -> dict[str, str]:
    """The README's PKI under `root`; the broker's files in ./broker, the device's in ./device."""
    cli.ok("create", "root", root, "--country", "DE", "--organization", "Example IoT")
    cli.ok("create", "intermediate", f"servers.{root}")
    cli.ok("create", "intermediate", f"devices.{root}", "--path-length", "1")
    cli.ok("create", "intermediate", f"cell1.devices.{root}")
    broker = f"mqtt.servers.{root}"
    sans = ["--san", "localhost", "--san", "127.0.0.1"]
    cli.ok("create", "server", broker, *sans, "--out-dir", "broker")
    device = cli.json(
        "create", "device", "--parent", f"cell1.devices.{root}", "--out-dir", "device"
    )
    return {
        "root": root,
        "broker": broker,
        "device": device["fqdn"],
        "cell": f"cell1.devices.{root}",
    }


def fields(text: str) -> dict[str, str]:
    """The `label: value` lines of the human output."""
    pairs = (line.partition(":") for line in text.splitlines() if ":" in line)
    return {label: value.strip() for label, _, value in pairs}


def test_a_ca_shows_where_its_key_is(cli: Cli) -> None:
    created = cli.ok("create", "root", "keys.example", "--key-store", "file")
    assert ["key", "store:", "file"] in [line.split() for line in created.splitlines()]
    shown = cli.ok("show", "keys.example")
    assert ["key", "store:", "file"] in [line.split() for line in shown.splitlines()]
    assert "key id" not in shown  # a file key has none


def test_expiring_lists_the_whole_fleet_soonest_first(cli: Cli) -> None:
    cli.ok("create", "root", "soon.example")
    cli.ok("create", "intermediate", "cell.soon.example")
    later = cli.json("create", "device", "--parent", "cell.soon.example", "--validity-days", "9")
    sooner = cli.json("create", "device", "--parent", "cell.soon.example", "--validity-days", "3")
    table = cli.ok("expiring", "--within-days", "10").splitlines()
    assert table[0].split() == ["FQDN", "TYPE", "PARENT", "NOT", "AFTER", "DAYS", "LEFT"]
    rows = [line.split() for line in table[1:]]
    assert [row[0] for row in rows] == [sooner["fqdn"], later["fqdn"]]
    assert [int(row[-1]) in (days - 1, days) for row, days in zip(rows, (3, 9), strict=True)] == [
        True, True,
    ]  # whole days left (the clock may have ticked past a second)  # fmt: skip
    listed = [
        line.split()[:4] for line in cli.ok("list", "--expiring-within-days", "10").splitlines()
    ]
    assert listed == [line.split()[:4] for line in table]  # not roots only (days left may tick)
    assert cli.ok("expiring", "--within-days", "1") == "nothing expires within 1 days\n"


def test_builds_a_pki_and_draws_its_tree(cli: Cli) -> None:
    names = build_pki(cli, "tree.example")
    cli.ok("create", "device", "--parent", names["cell"], "--count", "2")
    drawn = re.sub(r"until \d{4}-\d\d-\d\d", "until D", cli.ok("tree", "tree.example"))
    assert drawn.splitlines() == [
        "tree.example (Root, until D)",
        "├── devices.tree.example (Intermediate, until D)",
        "│   └── cell1.devices.tree.example (Intermediate, until D): 3 devices",
        "└── servers.tree.example (Intermediate, until D): 1 server",
    ]
    with_leaves = cli.ok("tree", "tree.example", "--leaves")
    assert "    └── mqtt.servers.tree.example (server, until " in with_leaves
    assert re.search(
        rf"\n│       [├└]── {re.escape(names['device'])} \(device, until ", with_leaves
    )
    assert "tree.example (Root, until D)" in re.sub(r"until [-\d]+", "until D", cli.ok("tree"))
    [root] = cli.json("tree", "tree.example")
    assert [child["fqdn"] for child in root["children"]] == [
        "devices.tree.example",
        "servers.tree.example",
    ]
    cell = root["children"][0]["children"][0]
    assert [child["type"] for child in cell["children"]] == ["Client"] * 3
    shown = fields(cli.ok("show", "tree.example"))
    assert (shown["type"], shown["status"], shown["key type"]) == ("Root", "active", "EC_P256")


def _listing_requests(server: LocalServer) -> int:
    return server.log().count('"method": "GET", "route": "/certificates", ')


def test_list_follows_every_page_or_stops_at_the_limit(cli: Cli, server: LocalServer) -> None:
    cli.ok("create", "root", "paging.example")
    cli.ok("create", "intermediate", "cell.paging.example")
    created = cli.json(
        "create", "device", "--parent", "cell.paging.example", "--count", "5", "--out-dir", "bulk"
    )
    fqdns = sorted(item["fqdn"] for item in created["items"])
    assert sorted(path.name for path in (cli.directory / "bulk").iterdir()) == fqdns
    for item in created["items"]:
        layout = _read_layout(cli.directory / "bulk" / item["fqdn"])
        assert (layout["cert.pem"], layout["key.pem"]) == (item["certificate"], item["private_key"])
        assert layout["chain.pem"] == created["chain"]
    before = _listing_requests(server)
    every = cli.json("list", "--parent", "cell.paging.example", "--page-size", "2")
    assert [item["fqdn"] for item in every["items"]] == fqdns
    assert every["next_token"] is None
    assert _listing_requests(server) - before == 3  # pages of 2, 2 and 1
    capped = cli.json("list", "--parent", "cell.paging.example", "--page-size", "2", "--limit", "3")
    assert [item["fqdn"] for item in capped["items"]] == fqdns[:3]
    assert capped["next_token"] is not None
    table = cli.ok("list", "--parent", "cell.paging.example", "--limit", "3").splitlines()
    assert table[0].split() == ["FQDN", "TYPE", "STATUS", "VALID", "UNTIL", "KEY", "TYPE"]
    assert [row.split()[:3] for row in table[1:4]] == [
        [fqdn, "Client", "active"] for fqdn in fqdns[:3]
    ]
    assert table[4:] == ["... more than 3: raise --limit to see them"]
    assert cli.ok("list", "--parent", "cell.paging.example", "--status", "revoked") == (
        "no certificates\n"
    )
    assert "paging.example" in cli.ok("list")  # roots


def test_renew_history_revoke_and_the_crl(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "root", "renew.example")
    cli.ok("create", "intermediate", "cell.renew.example")
    first = cli.json("create", "device", "--parent", "cell.renew.example", "--out-dir", "first")
    fqdn = first["fqdn"]
    renewed = fields(
        cli.ok("renew", fqdn, "--serial", first["serial"], "--revoke-previous", "--out-dir", "new")
    )
    assert (renewed["generation"], renewed["previous serial"]) == ("2", first["serial"])
    assert (tmp_path / "new" / "key.pem").read_text() != first["private_key"]
    assert (tmp_path / "first" / "key.pem").read_text() == first["private_key"]
    history = cli.ok("history", fqdn).splitlines()
    assert [row.split()[:3] for row in history[1:]] == [
        ["1", first["serial"], "revoked"],
        ["2", renewed["serial"], "active"],
    ]
    assert fields(cli.ok("show", fqdn, "--serial", first["serial"]))["status"] == "revoked"
    assert cli.json("show", fqdn)["generation"] == 2
    revoked = fields(cli.ok("revoke", fqdn, "--reason", "keyCompromise"))
    assert (revoked["status"], revoked["reason"]) == ("revoked", "keyCompromise")
    crl = x509.load_pem_x509_crl(cli.ok("crl", "cell.renew.example", "--format", "pem").encode())
    reasons = {
        entry.serial_number: entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        for entry in crl
    }
    assert reasons == {
        int(first["serial"], 16): x509.ReasonFlags.superseded,
        int(renewed["serial"], 16): x509.ReasonFlags.key_compromise,
    }
    assert cli.ok("crl", "cell.renew.example", "-o", "cell.crl") == "wrote cell.crl\n"
    der = x509.load_der_x509_crl((tmp_path / "cell.crl").read_bytes())
    assert {entry.serial_number for entry in der} == set(reasons)
    assert fields(cli.ok("revoke", "cell.renew.example"))["issued certificates"] == "1"
    refused = cli.run("delete", "cell.renew.example")
    assert refused.returncode != 0 and "cascade=true" in refused.stderr
    deleted = fields(cli.ok("delete", "cell.renew.example", "--cascade"))
    assert (deleted["fqdn"], deleted["deleted"]) == ("cell.renew.example", "2")
    assert cli.ok("list", "--parent", "renew.example") == "no certificates\n"
    gone = cli.run("show", fqdn)
    assert gone.returncode != 0 and "not found" in gone.stderr
    root_crl = x509.load_pem_x509_crl(cli.ok("crl", "renew.example", "--format", "pem").encode())
    assert len(list(root_crl)) == 1  # the cell, still listed


def test_bundles_and_the_private_key(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "root", "bundle.example")
    issued = cli.json("create", "server", "mqtt.bundle.example")
    fqdn = issued["fqdn"]
    assert cli.ok("bundle", fqdn) == issued["certificate"]
    assert (
        cli.ok("bundle", fqdn, "--format", "fullchain") == issued["certificate"] + issued["chain"]
    )
    assert cli.ok("bundle", fqdn, "--format", "chain") == issued["chain"]  # a leaf's issuers
    password = "bundle-password-3c9e"
    cli.ok(
        "bundle", fqdn, "--format", "pkcs12", "-o", "server.p12", IOTCERT_BUNDLE_PASSWORD=password
    )
    p12 = tmp_path / "server.p12"
    assert stat.S_IMODE(p12.stat().st_mode) == 0o600
    key, certificate, chain = pkcs12.load_key_and_certificates(p12.read_bytes(), password.encode())
    assert certificate is not None and key is not None
    assert certificate.public_bytes(serialization.Encoding.PEM).decode() == issued["certificate"]
    assert key.public_key() == certificate.public_key()
    assert [c.subject.rfc4514_string() for c in chain] == ["CN=bundle.example"]
    refused = cli.run("bundle", fqdn, "--format", "pkcs12")
    assert refused.returncode == 1
    assert "pkcs12 bundle needs a password" in refused.stderr
    assert cli.ok("private-key", fqdn) == issued["private_key"]
    assert cli.json("private-key", fqdn) == {"fqdn": fqdn, "private_key": issued["private_key"]}
    forbidden = cli.run("private-key", "bundle.example")
    assert forbidden.returncode == 1
    assert forbidden.stderr == (
        "iotcert: the private key of CA bundle.example is never served (HTTP 403 ForbiddenError)\n"
    )


def _read_layout(directory: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(directory.iterdir())}


def test_files_are_what_a_broker_and_a_device_load(cli: Cli, tmp_path: Path) -> None:
    names = build_pki(cli, "files.example")
    broker_hint = cli.ok("files", names["broker"], "broker-files")
    device_hint = cli.ok("files", names["device"], "new/device-files")
    root_pem = cli.json("show", "files.example")["certificate"]
    for directory in (tmp_path / "broker-files", tmp_path / "new" / "device-files"):
        layout = _read_layout(directory)
        assert sorted(layout) == LAYOUT
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE((directory / "key.pem").stat().st_mode) == 0o600
        assert stat.S_IMODE((directory / "cert.pem").stat().st_mode) == 0o644
        assert layout["ca.pem"] == root_pem
        assert layout["fullchain.pem"] == layout["cert.pem"] + layout["chain.pem"]
        key = serialization.load_pem_private_key(layout["key.pem"].encode(), None)
        leaf = x509.load_pem_x509_certificate(layout["cert.pem"].encode())
        assert key.public_key() == leaf.public_key()
    broker = _read_layout(tmp_path / "broker-files")
    device = _read_layout(tmp_path / "new" / "device-files")
    verify_server(
        {"certificate": broker["cert.pem"], "chain": broker["chain.pem"]},
        broker["ca.pem"],
        "localhost",
    )
    verify_client(
        {"certificate": device["cert.pem"], "chain": device["chain.pem"]}, device["ca.pem"]
    )
    with pytest.raises(VerificationError):  # the broker is no client
        verify_client({"certificate": broker["cert.pem"], "chain": broker["chain.pem"]}, root_pem)
    # `create --out-dir` wrote the same files from the creation's answer.
    assert _read_layout(tmp_path / "device") == device
    assert _read_layout(tmp_path / "broker") == broker
    key_line = f"  keyfile {tmp_path / 'broker-files' / 'key.pem'}\n  require_certificate true"
    assert key_line in broker_hint
    assert "--cafile new/device-files/ca.pem --cert new/device-files/fullchain.pem" in device_hint
    # A root is its own trust anchor; no chain, no key.
    cli.ok("files", "files.example", "root-files")
    root = _read_layout(tmp_path / "root-files")
    assert root == {"ca.pem": root_pem, "cert.pem": root_pem, "fullchain.pem": root_pem}


def _csr(path: Path) -> ec.EllipticCurvePrivateKey:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ignored")]))
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return key


def test_devices_from_csrs_have_no_key_file(cli: Cli, tmp_path: Path) -> None:
    cli.ok("create", "root", "csr.example")
    first, second = _csr(tmp_path / "first.csr"), _csr(tmp_path / "second.csr")
    device = cli.json(
        "create", "device", "--parent", "csr.example", "--csr", "first.csr", "--out-dir", "d"
    )
    assert "private_key" not in device
    assert sorted(_read_layout(tmp_path / "d")) == [
        "ca.pem",
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
    ]
    leaf = x509.load_pem_x509_certificate((tmp_path / "d" / "cert.pem").read_bytes())
    assert leaf.public_key() == first.public_key()
    cli.ok("files", device["fqdn"], "again")  # the 404 of /private-key: no key.pem, no error
    assert "key.pem" not in _read_layout(tmp_path / "again")
    bulk = cli.json(
        "create", "device", "--parent", "csr.example", "--csr", "first.csr", "--csr", "second.csr"
    )
    assert bulk["count"] == 2
    keys = [
        x509.load_pem_x509_certificate(item["certificate"].encode()).public_key()
        for item in bulk["items"]
    ]
    assert keys == [first.public_key(), second.public_key()]


def test_json_is_the_services_own(cli: Cli) -> None:
    cli.ok("create", "root", "json.example")
    before = json.loads(cli.ok("--json", "show", "json.example"))
    after = json.loads(cli.ok("show", "json.example", "--json"))
    assert before == after
    assert before["fqdn"] == "json.example"
    assert before["certificate"].startswith("-----BEGIN CERTIFICATE-----")
    assert {"serial", "not_after", "fingerprint_sha256", "status", "chain"} <= set(before)


def test_errors_are_clear_and_exit_non_zero(cli: Cli) -> None:
    missing = cli.run("show", "nothing.example")
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr == (
        "iotcert: certificate nothing.example not found (HTTP 404 NotFoundError)\n"
    )
    invalid = cli.run("create", "intermediate", "bad_name.example")
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("iotcert: FQDN: 'bad_name.example' must be a lowercase")
    assert "(HTTP 400 BadRequestError)" in invalid.stderr
    wrong_parent = cli.run(
        "create", "intermediate", "x.nothing.example", "--parent", "nothing.example"
    )
    assert wrong_parent.stderr.startswith("iotcert: --parent: CA nothing.example not found")
    kms = cli.run("create", "root", "kms.example", "--key-store", "kms")
    assert kms.returncode == 1
    assert kms.stderr.startswith(
        "iotcert: --key-store: kms is not offered by this deployment; it offers file"
    )
    json_file = cli.run("--json", "crl", "nothing.example")
    assert json_file.returncode == 2 and "--json: this command writes its file" in json_file.stderr
    usage = cli.run("list", "--limit", "zero")
    assert usage.returncode == 2
    assert "usage: iotcert list" in usage.stderr
    port = free_port()  # nothing listens there
    unreachable = run_iotcert(f"http://127.0.0.1:{port}", "list", cwd=cli.directory)
    assert unreachable.returncode == 1
    assert unreachable.stderr == (
        f"iotcert: cannot reach http://127.0.0.1:{port}: connection refused; "
        "is `make run` running?\n"
    )


def test_the_token_goes_to_a_server_that_requires_one(tmp_path: Path) -> None:
    token = "token-2b7f0e"
    with LocalServer(tmp_path / "store", tmp_path / "log", workers=1, API_TOKEN=token) as guarded:
        refused = run_iotcert(guarded.url, "create", "root", "token.example", cwd=tmp_path)
        wrong = run_iotcert(guarded.url, "list", cwd=tmp_path, environment={"IOTCERT_TOKEN": "x"})
        accepted = run_iotcert(
            guarded.url,
            "create",
            "root",
            "token.example",
            cwd=tmp_path,
            environment={"IOTCERT_TOKEN": token},
        )
    assert refused.returncode == 1
    assert "Authorization: Bearer <API_TOKEN> is required; set IOTCERT_TOKEN to the server's " in (
        refused.stderr
    )
    assert wrong.returncode == 1
    assert "(HTTP 401" in wrong.stderr
    assert accepted.returncode == 0, accepted.stderr
    assert fields(accepted.stdout)["fqdn"] == "token.example"


def test_help_from_the_command_line(cli: Cli) -> None:
    top = cli.ok("--help")
    for command in ("create", "list", "show", "history", "tree", "renew", "revoke", "crl",
                    "bundle", "private-key", "files"):  # fmt: skip
        assert f"\n    {command} " in top
    assert "--san NAME" in cli.ok("create", "server", "--help")


def test_the_project_installs_the_iotcert_command_only(tmp_path: Path) -> None:
    """The wheel holds the client alone (never chalicelib, tests, ...) and its console script
    runs from a fresh virtualenv; built and installed with no index, as make's venv step does."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_ROOT / name, source / name)
    shutil.copytree(
        PROJECT_ROOT / "iotcert", source / "iotcert", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*build, "-w", tmp_path / "dist", source], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        top_level = {name.split("/")[0] for name in archive.namelist()}
        entry_points = archive.read("iot_cert_service-1.0.0.dist-info/entry_points.txt").decode()
    assert top_level == {"iotcert", "iot_cert_service-1.0.0.dist-info"}
    assert "iotcert = iotcert.cli:main" in entry_points
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    install = [*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index"]
    subprocess.run([*install, wheel], check=True, capture_output=True)
    helped = subprocess.run([venv / "bin" / "iotcert", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: iotcert")
    port = free_port()
    unreachable = subprocess.run(
        [venv / "bin" / "iotcert", "--api", f"http://127.0.0.1:{port}", "tree"],
        capture_output=True,
        text=True,
    )
    assert unreachable.returncode == 1
    assert "connection refused" in unreachable.stderr

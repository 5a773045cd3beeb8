"""The fixtures the test tiers share, loaded by tests/conftest.py (`pytest_plugins`).

An isolated store per test (`certstore`), the Chalice test client on it (`api`) or on each
backend (`backend`, `backend_api`; one per module: `module_backend`, `module_backend_api`), the
example hierarchy (`hierarchy`), a real local server (`local_server`), a fresh moto account for the
contract suites' AWS adapters (`aws_resources`), a moto server for Terraform (`moto_endpoint`),
and a recording HTTP server with a clean AWS environment for the CLI (`recorder`,
`aws_environment`, `aws_credentials`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.config import load_settings
from devtools.aws_resources import AWS_ENVIRONMENT
from devtools.ports import free_port
from devtools.softhsm import Token, ensure_token, softhsm_module
from tests.backends import (
    FAKE_CREDENTIALS,
    AwsResources,
    Backend,
    LocalBackend,
    MotoBackend,
    moto_account,
)
from tests.helpers import (
    ACCESS_KEY,
    SECRET_KEY,
    SESSION_TOKEN,
    ApiClient,
    create_hierarchy,
)
from tests.servers import LocalServer, RecordingServer

KEY_STORE_PARAMS = [
    pytest.param(("local", "file"), id="file"),
    pytest.param(("local", "pkcs11"), id="pkcs11"),
    pytest.param(("aws", "kms"), id="kms", marks=pytest.mark.moto),
]
"""The three CA signers: a key in the local store, one in a SoftHSM2 token, one in KMS (moto)."""

# Stores and clients ------------------------------------------------------------------------------


@pytest.fixture
def certstore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh local backend under tmp_path for this test."""
    directory = tmp_path / "certstore"
    monkeypatch.setenv("CERTSTORE_DIR", str(directory))
    monkeypatch.setenv("BACKEND", "local")
    monkeypatch.delenv("CA_KEY_PASSPHRASE", raising=False)
    wiring.reset()
    yield directory
    wiring.reset()


@pytest.fixture
def api(certstore: Path) -> Iterator[ApiClient]:
    """The HTTP test client (Chalice's, no server) on the local backend at `certstore`."""
    from app import app

    with Client(app, stage_name="test") as client:
        yield ApiClient(client)


@contextmanager
def _opened_backend(
    kind: str, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """The local backend at `directory`, or the AWS one in a fresh moto account (`mock_aws`),
    wired for the app; the environment through `monkeypatch`."""
    monkeypatch.delenv("CA_KEY_PASSPHRASE", raising=False)
    if kind == "local":
        monkeypatch.setenv("BACKEND", "local")
        monkeypatch.setenv("CERTSTORE_DIR", str(directory))
        wiring.reset()
        try:
            yield LocalBackend(directory)
        finally:
            wiring.reset()
        return
    with moto_account(monkeypatch, AWS_ENVIRONMENT) as (session, resources):
        monkeypatch.setenv("KMS_KEY_ID", resources["kms_key_id"])
        # The wiring's own build, from this environment, on the run's shared session.
        wiring.override_service(wiring.build_service(load_settings(), boto_session=session))
        try:
            yield MotoBackend(session, AWS_ENVIRONMENT, resources)
        finally:
            wiring.reset()


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> Token:
    """One SoftHSM2 token per test process (its module reads SOFTHSM2_CONF once a process), which
    every PKCS#11 test shares; skipped where SoftHSM2 is not installed."""
    if softhsm_module() is None:
        pytest.skip("SoftHSM2 is not installed (make hsm-tools installs it from Debian's package)")
    token = ensure_token(tmp_path_factory.mktemp("softhsm"))
    os.environ["SOFTHSM2_CONF"] = str(token.config)  # for this process's module, once loaded
    return token


@pytest.fixture(scope="module", params=KEY_STORE_PARAMS)
def key_store_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Backend, str]]:
    """One backend per CA signer, for a module: (the backend, the `key_store` its CAs ask for);
    with `pkcs11`, the local backend is pointed at the test process's SoftHSM2 token."""
    kind, key_store = request.param
    directory = tmp_path_factory.mktemp("certstore")
    with pytest.MonkeyPatch.context() as monkeypatch:
        if key_store == "pkcs11":
            token = request.getfixturevalue("softhsm_token")
            for name, value in token.environment().items():
                monkeypatch.setenv(name, value)
        with _opened_backend(kind, directory, monkeypatch) as opened:
            yield opened, key_store


@pytest.fixture(params=["local", "aws"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Each backend in turn: the local one, and the AWS one under moto (`mock_aws`).

    A module whose point is not the backend keeps to the local one with
    `pytest.mark.parametrize("backend", ["local"], indirect=True)`.
    """
    with _opened_backend(request.param, tmp_path / "certstore", monkeypatch) as opened:
        yield opened


@pytest.fixture
def backend_api(backend: Backend) -> Iterator[ApiClient]:
    """The HTTP test client on each backend; on AWS, events reach the handler through SQS."""
    from app import app

    with Client(app, stage_name="test") as client:
        yield ApiClient(client, backend)


@pytest.fixture(scope="module", params=["local", "aws"])
def module_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Backend]:
    """`backend`, one per module: for tests that each prove they wrote nothing, so that what a
    module sets up once (a hierarchy) stays as it was. A module's tests use either this or
    `backend`, never both: one moto account at a time."""
    directory = tmp_path_factory.mktemp("certstore")
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        _opened_backend(request.param, directory, monkeypatch) as opened,
    ):
        yield opened


@pytest.fixture(scope="module")
def module_backend_api(module_backend: Backend) -> Iterator[ApiClient]:
    """`backend_api` on `module_backend`."""
    from app import app

    with Client(app, stage_name="test") as client:
        yield ApiClient(client, module_backend)


@pytest.fixture
def hierarchy(request: pytest.FixtureRequest, backend_api: ApiClient) -> dict[str, dict[str, Any]]:
    """The example hierarchy (tests.helpers.create_hierarchy), issued through `backend_api`:
    root example.com, servers.example.com, devices.example.com (path length 1) with cell1 and
    cell2, the responses by FQDN.

    EC P-256 keys, or the key type given by `parametrize("hierarchy", [...], indirect=True)`.
    """
    key_type: str = getattr(request, "param", "EC_P256")
    return create_hierarchy(backend_api, key_type=key_type)


# AWS under moto ---------------------------------------------------------------------------------


@pytest.fixture
def aws_resources(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsResources]:
    """Bucket, KMS key, table with its index, bus, rule and SQS target in a fresh moto account,
    built as Terraform would; for the contract suites' AWS adapters (`adapter_params`)."""
    assert request.node.get_closest_marker("moto"), f"{request.node.nodeid}: not marked moto"
    with moto_account(monkeypatch, FAKE_CREDENTIALS) as (session, created):
        yield AwsResources(
            session=session,
            bucket=AWS_ENVIRONMENT["CERTIFICATE_BUCKET_NAME"],
            table=AWS_ENVIRONMENT["INVENTORY_TABLE_NAME"],
            index=AWS_ENVIRONMENT["INVENTORY_INDEX_NAME"],
            bus=AWS_ENVIRONMENT["EVENT_BUS_NAME"],
            kms_key_id=created["kms_key_id"],
            queue_url=created["queue_url"],
        )


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on a free port for the module (Terraform's provider points at it), whose
    account has AWS's managed policies, as every account does (the JITP role attaches one)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")  # read as moto makes IAM's backend
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=30):  # a fresh account for the module
            pass
        try:
            yield endpoint
        finally:
            server.stop()


# Servers ----------------------------------------------------------------------------------------


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[LocalServer]:
    """The `make run` server on its own store under tmp_path."""
    with LocalServer(tmp_path / "server-certstore", tmp_path / "server.log") as server:
        yield server


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    """A recording HTTP server in a thread, for what a client puts on the wire."""
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


# The CLI's AWS environment ----------------------------------------------------------------------

UNSET = ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
         "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "IOTCERT_TOKEN", "IOTCERT_API",
         "IOTCERT_BUNDLE_PASSWORD")  # fmt: skip


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS settings of the machine's: no profile, no region, no instance metadata."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def aws_credentials(aws_environment: pytest.MonkeyPatch) -> None:
    """`aws_environment` with the example credentials (tests.helpers.ACCESS_KEY and so on)."""
    aws_environment.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    aws_environment.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


class AuditLines(logging.Handler):
    """The audit logger's lines, parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.extend(json.loads(line) for line in record.getMessage().splitlines())


@pytest.fixture
def audit_lines() -> Iterator[AuditLines]:
    """What the audit logger writes during the test (at INFO, whatever the host set)."""
    handler = AuditLines()
    logger = logging.getLogger("iot_cert_service.audit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

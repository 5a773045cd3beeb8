"""Shared test helpers: the example names, an HTTP client wrapper, store snapshots, chain
verification, the CLI and openssl as subprocesses. Fixtures are in tests/fixtures.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.verification import PolicyBuilder, Store

if TYPE_CHECKING:
    from tests.backends import Backend

PROJECT_ROOT = Path(__file__).resolve().parent.parent
JSON_HEADERS = {"Content-Type": "application/json"}

ROOT = "example.com"
SERVER_CA = "servers.example.com"
DEVICE_CA_PARENT = "devices.example.com"
CELL1 = "cell1.devices.example.com"
CELL2 = "cell2.devices.example.com"

ACCESS_KEY, SECRET_KEY, SESSION_TOKEN = "AKIDEXAMPLE", "secret-key-example", "session-token-example"
"""The example AWS credentials the `aws_credentials` fixture gives the CLI."""


@dataclass
class ApiResponse:
    status_code: int
    body: Any


class ApiClient:
    """Thin wrapper over chalice.test.Client: JSON in, (status, JSON) out."""

    def __init__(self, client: Any, backend: Any = None) -> None:
        self._client = client
        self.backend = backend

    @property
    def chalice_client(self) -> Any:
        return self._client

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> ApiResponse:
        raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
        response = self._client.http.post(path, headers=headers or JSON_HEADERS, body=raw)
        if self.backend is not None:  # on AWS, run the inventory handler as EventBridge would
            self.backend.deliver_events(self._client)
        return ApiResponse(response.status_code, _json_or_text(response.body))

    def get(self, path: str) -> ApiResponse:
        response = self._client.http.get(path)
        return ApiResponse(response.status_code, _json_or_text(response.body))

    def delete(self, path: str) -> ApiResponse:
        response = self._client.http.delete(path, headers=JSON_HEADERS)
        if self.backend is not None:
            self.backend.deliver_events(self._client)
        return ApiResponse(response.status_code, _json_or_text(response.body))

    def create(self, kind: str, **fields: Any) -> dict[str, Any]:
        """POST /certificates/<kind> and insist on 201."""
        response = self.post(f"/certificates/{kind}", fields)
        assert response.status_code == 201, response.body
        return response.body


ERROR_CODES = {
    400: "BadRequestError",
    404: "NotFoundError",
    409: "ConflictError",
    413: "EntityTooLargeError",
}
"""The Chalice error code of each status a rejected request gets."""
MAX_BODY_BYTES = 64 * 1024
"""The largest request body the API reads."""


def send(api: ApiClient, method: str, path: str, body: Any = None) -> ApiResponse:
    """GET or DELETE `path`, or POST `body` to it."""
    if method == "GET":
        return api.get(path)
    if method == "DELETE":
        return api.delete(path)
    return api.post(path, body)


def assert_error(response: ApiResponse, status: int, field: str, contains: str = "") -> str:
    """The Chalice error body, with a message that starts with the field it blames."""
    assert response.status_code == status, response.body
    assert isinstance(response.body, dict), response.body
    assert set(response.body) == {"Code", "Message"}, response.body
    assert response.body["Code"] == ERROR_CODES[status]
    message = response.body["Message"]
    assert re.match(rf"{re.escape(field)}(?!\w)", message), f"{message!r} does not name {field!r}"
    assert contains in message
    assert "Traceback" not in message
    return message


def assert_rejected(
    api: ApiClient,
    backend: Backend,
    method: str,
    path: str,
    body: Any = None,
    *,
    status: int = 400,
    field: str,
    contains: str = "",
) -> str:
    """Send the request, check the error, and prove that nothing stored changed."""
    before = backend.snapshot()
    message = assert_error(send(api, method, path, body), status, field, contains)
    assert backend.snapshot() == before
    return message


def binary_accepts(media_type: str) -> dict[str, str]:
    """The Accept headers a binary download (DER CRL, PKCS#12) must arrive as bytes for."""
    import requests

    return {
        "curl's default": "*/*",
        "its own type": media_type,
        "python requests": requests.utils.default_headers()["Accept"],
    }


def _json_or_text(body: bytes | str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


def create_hierarchy(api: ApiClient, key_type: str = "EC_P256") -> dict[str, dict[str, Any]]:
    """Root example.com; servers.example.com; devices.example.com (path 1) with cell1 and cell2."""
    return {
        ROOT: api.create("root", fqdn=ROOT, key_type=key_type),
        SERVER_CA: api.create("intermediate", fqdn=SERVER_CA, key_type=key_type),
        DEVICE_CA_PARENT: api.create(
            "intermediate", fqdn=DEVICE_CA_PARENT, path_length=1, key_type=key_type
        ),
        CELL1: api.create("intermediate", fqdn=CELL1, key_type=key_type),
        CELL2: api.create("intermediate", fqdn=CELL2, key_type=key_type),
    }


def snapshot_certstore(directory: Path) -> dict[str, Any]:
    """Every file's bytes plus every inventory row: compare before/after to prove no write."""
    files = {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and not path.name.startswith("inventory.sqlite3")
    }
    database = directory / "inventory.sqlite3"
    rows: list[tuple[Any, ...]] = []
    if database.exists():
        with sqlite3.connect(database) as connection:
            rows = connection.execute("SELECT * FROM inventory ORDER BY FQDN").fetchall()
        connection.close()
    return {"files": files, "inventory": rows}


def load_pem_chain(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode()) if pem.strip() else []


def verify_server(issued: dict[str, Any], root_pem: str, dns_name: str) -> list[x509.Certificate]:
    """Build and verify the chain of a server certificate for `dns_name`; raises on failure."""
    verifier = (
        PolicyBuilder()
        .store(Store(load_pem_chain(root_pem)))
        .build_server_verifier(x509.DNSName(dns_name))
    )
    leaf = x509.load_pem_x509_certificate(issued["certificate"].encode())
    return verifier.verify(leaf, load_pem_chain(issued["chain"]))


def verify_client(issued: dict[str, Any], root_pem: str) -> Any:
    """Build and verify the chain of a device (client) certificate; raises on failure."""
    verifier = PolicyBuilder().store(Store(load_pem_chain(root_pem))).build_client_verifier()
    leaf = x509.load_pem_x509_certificate(issued["certificate"].encode())
    return verifier.verify(leaf, load_pem_chain(issued["chain"]))


NON_ASCII_PASSWORD = "pässwörd-密码"


def assert_pkcs12_opens(content: bytes, password: str, fqdn: str) -> None:
    """The PKCS#12 file opens with the UTF-8 bytes of `password`, in cryptography and, where it
    is installed, in `openssl pkcs12`, and not with the password's UTF-8 bytes read as Latin-1
    (as HTTP servers hand them on); the leaf is `fqdn`'s."""
    misread = password.encode().decode("latin-1")
    assert misread != password
    bundle = pkcs12.load_pkcs12(content, password.encode())
    assert bundle.cert is not None and bundle.cert.friendly_name == fqdn.encode()
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(content, misread.encode())
    if shutil.which("openssl") is None:
        return
    for given, opens in ((password, True), (misread, False)):
        result = subprocess.run(
            ["openssl", "pkcs12", "-nokeys", "-passin", "env:BUNDLE_PASSWORD"],
            input=content, env=dict(os.environ, BUNDLE_PASSWORD=given),
            capture_output=True, check=False, timeout=30,
        )  # fmt: skip
        assert (result.returncode == 0) is opens, result.stderr
        assert (b"BEGIN CERTIFICATE" in result.stdout) is opens


def run_iotcert(
    api: str, *args: str, cwd: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`iotcert ARGS` as a user runs it (`python -m iotcert`, the console script's code), in `cwd`,
    against `api`; no IOTCERT_* setting of the caller's leaks in."""
    inherited = {
        name: value for name, value in os.environ.items() if not name.startswith("IOTCERT")
    }
    return subprocess.run(
        [sys.executable, "-m", "iotcert", *args],
        cwd=cwd,
        env={
            **inherited,
            "PYTHONPATH": str(PROJECT_ROOT),
            "IOTCERT_API": api,
            **(environment or {}),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


OPENSSL_TIMEOUT_SECONDS = 30


def openssl(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    """The openssl command line (skips the test where it is not installed)."""
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("the openssl command is not on PATH (Debian: apt install openssl)")
    return subprocess.run(
        [path, *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=OPENSSL_TIMEOUT_SECONDS,
        check=False,
    )


def list_page(api: ApiClient, query: str) -> dict[str, Any]:
    """One page of GET /certificates?{query}, checked to be a 200 of the listing's shape."""
    response = api.get(f"/certificates?{query}")
    assert response.status_code == 200, response.body
    assert set(response.body) == {"items", "next_token"}
    return dict(response.body)


def list_all(api: ApiClient, query: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every item of a listing, following next_token to the end; (items in order, pages)."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    pages = 0
    while True:
        page = list_page(api, f"{query}&limit={limit}" + (f"&next_token={token}" if token else ""))
        pages += 1
        assert len(page["items"]) <= limit
        items.extend(page["items"])
        token = page["next_token"]
        if token is None:
            return items, pages
        assert pages < 1000, "next_token never became null"

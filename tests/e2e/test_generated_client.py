"""A Python client generated from the OpenAPI description works: openapi-python-client (in a
virtualenv of its own, `make openapi-client`) generates it once per module from the document
`/openapi.json` serves, and the client runs on that virtualenv's Python (the generator brings
httpx and attrs, all the client needs) against the real server."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chalicelib.api.fields import FIELDS, REQUESTS
from chalicelib.api.spec import openapi_document
from tests.helpers import PROJECT_ROOT
from tests.servers import LocalServer

GENERATOR_VENV = PROJECT_ROOT / ".venv-openapi-client"
PACKAGE = "cert_client"

MODELS_SCRIPT = """
import inspect, json
import attrs
from cert_client.api.default import create_device_certificates, create_root_certificate
from cert_client.models import DeviceRequest, IntermediateRequest, RootRequest, ServerRequest

models = (RootRequest, IntermediateRequest, ServerRequest, DeviceRequest)
bodies = {
    module.__name__.rsplit(".", 1)[1]: inspect.signature(module.sync_detailed)
    .parameters["body"].annotation.__name__
    for module in (create_root_certificate, create_device_certificates)
}
fields = {model.__name__: {f.name: str(f.type) for f in attrs.fields(model)} for model in models}
print(json.dumps({"bodies": bodies, "fields": fields}))
"""

ISSUE_SCRIPT = """
import json, sys
from cert_client import Client
from cert_client.api.default import create_device_certificates, create_root_certificate
from cert_client.models import DeviceRequest, KeyType, RootRequest

client = Client(base_url=sys.argv[1])
create_root, create_devices = create_root_certificate, create_device_certificates
fleet = "fleet.example.com"
root = create_root.sync_detailed(
    client=client, body=RootRequest(fqdn=fleet, country="DE", key_type=KeyType.EC_P384)
)
device = create_devices.sync_detailed(
    client=client, body=DeviceRequest(parent_fqdn=fleet, validity_days=30)
)
again = create_root.sync_detailed(client=client, body=RootRequest(fqdn=fleet))
orphan = create_devices.sync_detailed(
    client=client, body=DeviceRequest(parent_fqdn="missing.example.com")
)
print(json.dumps({
    name: {"status": int(response.status_code), "model": type(response.parsed).__name__,
           "body": response.parsed.to_dict()}
    for name, response in (("root", root), ("device", device), ("again", again), ("orphan", orphan))
}))
"""


def _run(directory: Path, script: str, *arguments: str) -> Any:
    """`script` on the generator's Python with the generated package importable; its JSON out."""
    result = subprocess.run(
        [str(GENERATOR_VENV / "bin" / "python"), "-W", "error", "-c", script, *arguments],
        env=dict(os.environ, PYTHONPATH=str(directory)),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory holding the generated package `cert_client`."""
    installed = GENERATOR_VENV / ".installed"
    if not installed.exists():
        make = subprocess.run(
            ["make", "-s", "openapi-client"], cwd=PROJECT_ROOT,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if not installed.exists():
            output = (make.stdout + make.stderr).strip()[-500:]
            pytest.skip(
                f"openapi-python-client could not be installed (make openapi-client): {output}"
            )
    directory = tmp_path_factory.mktemp("generated-client")
    spec = directory / "openapi.json"
    spec.write_text(json.dumps(openapi_document()))  # the body GET /openapi.json serves
    config = directory / "config.yaml"
    config.write_text(f"package_name_override: {PACKAGE}\n")
    # Its post-generation hooks run ruff (a dependency of the generator) from PATH.
    path = os.pathsep.join((str(GENERATOR_VENV / "bin"), os.environ.get("PATH", "")))
    result = subprocess.run(
        [str(GENERATOR_VENV / "bin" / "openapi-python-client"), "generate", "--path", str(spec),
         "--config", str(config), "--meta", "none", "--output-path", str(directory / PACKAGE)],
        env=dict(os.environ, PATH=path), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (directory / PACKAGE / "models" / "root_request.py").exists()
    return directory


def test_request_bodies_are_typed_models_with_every_field(generated_client: Path) -> None:
    described = _run(generated_client, MODELS_SCRIPT)
    assert described["bodies"] == {
        "create_root_certificate": "RootRequest",
        "create_device_certificates": "DeviceRequest",
    }
    fields = described["fields"]
    for request, model in REQUESTS.items():
        if model in fields:
            assert set(fields[model]) == {f.name for f in FIELDS if request in f.requests}, model
    assert {"RootRequest", "IntermediateRequest", "ServerRequest", "DeviceRequest"} <= set(fields)
    root, device = fields["RootRequest"], fields["DeviceRequest"]
    assert root["fqdn"] == "str"
    assert root["country"] == "None | str | Unset"
    assert root["key_type"] == "KeyType | Unset"
    assert device["parent_fqdn"] == "str"
    assert device["count"] == "int | None | Unset"
    assert device["csr"] == "None | str | Unset"
    assert device["csrs"] == "list[str] | None | Unset"


def test_the_client_creates_a_root_and_a_device_and_types_errors(
    generated_client: Path, local_server: LocalServer
) -> None:
    responses = _run(generated_client, ISSUE_SCRIPT, local_server.url)

    root = responses["root"]
    assert (root["status"], root["model"]) == (201, "IssuedCertificate")
    assert root["body"]["type"] == "Root" and root["body"]["key_type"] == "EC_P384"
    assert "private_key" not in root["body"]

    device = responses["device"]
    assert (device["status"], device["model"]) == (201, "IssuedCertificate")
    body = device["body"]
    assert body["type"] == "Client" and body["parent_fqdn"] == "fleet.example.com"
    certificate = x509.load_pem_x509_certificate(body["certificate"].encode())
    key = serialization.load_pem_private_key(body["private_key"].encode(), password=None)
    assert key.public_key() == certificate.public_key()
    assert certificate.subject.rfc4514_string() == f"CN={body['device_id']}"
    assert "fleet.example.com" in certificate.issuer.rfc4514_string()

    for name, status in (("again", 409), ("orphan", 404)):
        error = responses[name]
        assert (error["status"], error["model"]) == (status, "Error"), name
        assert set(error["body"]) == {"Code", "Message"} and error["body"]["Message"], name
    assert "Traceback" not in local_server.log()

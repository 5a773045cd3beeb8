"""The OpenAPI description: complete both ways, valid, served, and holding under fuzzing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from chalicelib.api.fields import BY_NAME, FIELDS, REQUESTS
from chalicelib.api.portal import PORTAL_ROUTES
from chalicelib.api.spec import openapi_document
from tests.helpers import ApiClient
from tests.servers import LocalServer

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
SCHEMA_KEYWORDS = {
    "$ref", "type", "description", "properties", "required", "additionalProperties", "items",
    "oneOf", "enum", "const", "default", "format", "contentEncoding", "pattern", "minimum",
    "maximum", "minLength", "maxLength", "minItems", "maxItems",
}  # fmt: skip
"""The keywords the description uses; no allOf: generators type it as its first part alone."""


def _spec() -> dict:
    return openapi_document()


def test_every_route_is_described_and_every_description_is_a_route() -> None:
    from app import app

    implemented = {
        (path, method.lower()) for path, entries in app.routes.items() for method in entries
    }
    described = {
        (path, method)
        for path, operations in _spec()["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }
    # The portal's page and files are routes of the app but no operation of the API: excluded
    # by name, so that any other route missing from the description still fails here.
    assert implemented >= PORTAL_ROUTES
    assert implemented - PORTAL_ROUTES == described
    assert len(described) == 18
    assert not any(path.startswith("/portal") for path, _ in described)


def test_the_description_is_valid_openapi_3_1() -> None:
    spec = _spec()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def _nulls(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nulls(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _nulls(value, f"{path}/{index}")
    elif node is None:
        yield path


def _schemas(node: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every schema object: under `schema` and components/schemas, and those they hold."""
    if isinstance(node, list):
        for index, value in enumerate(node):
            yield from _schemas(value, f"{path}/{index}")
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "schema":
            yield from _schema_tree(value, f"{path}/schema")
        elif key == "schemas" and path == "/components":
            for name, schema in value.items():
                yield from _schema_tree(schema, f"{path}/schemas/{name}")
        else:
            yield from _schemas(value, f"{path}/{key}")


def _schema_tree(schema: dict, path: str) -> Iterator[tuple[str, dict]]:
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from _schema_tree(child, f"{path}/properties/{name}")
    if isinstance(schema.get("items"), dict):
        yield from _schema_tree(schema["items"], f"{path}/items")
    for index, child in enumerate(schema.get("oneOf", [])):
        yield from _schema_tree(child, f"{path}/oneOf/{index}")


def test_no_value_is_null_and_every_schema_key_is_a_keyword() -> None:
    """An unquoted comma in a flow mapping (`{description: a, b}`) cuts the description short
    and adds a key `b` whose value is null: neither may happen anywhere."""
    spec = _spec()
    assert list(_nulls(spec)) == []
    schemas = dict(_schemas(spec))
    assert len(schemas) > 150
    strays = {path: sorted(set(schema) - SCHEMA_KEYWORDS) for path, schema in schemas.items()}
    assert {path: keys for path, keys in strays.items() if keys} == {}
    device_csr = schemas["/components/schemas/DeviceRequest/properties/csr"]
    assert device_csr["description"] == BY_NAME["csr"].description


def test_request_schemas_are_plain_objects_naming_every_declared_field() -> None:
    schemas = _spec()["components"]["schemas"]
    for request, name in REQUESTS.items():
        schema = schemas[name]
        assert schema["type"] == "object" and schema["additionalProperties"] is False, name
        declared = {field.name for field in FIELDS if request in field.requests}
        assert set(schema["properties"]) == declared, name
        required = [field.name for field in FIELDS if request in field.required_in]
        assert schema["required"] == required, name
    assert schemas["DeviceRequest"]["required"] == ["parent_fqdn"]
    assert set(schemas["RenewRequest"]["properties"]) == {
        "validity_days", "key_type", "csr", "reuse_key", "revoke_previous", "serial",
    }  # fmt: skip
    revoked, certificate = schemas["RevokedCertificate"], schemas["Certificate"]
    assert revoked["properties"] == certificate["properties"] | {
        "issued_certificates": revoked["properties"]["issued_certificates"]
    }
    assert set(revoked["required"]) == {*certificate["required"], "revoked_at", "revocation_reason"}


def test_it_is_served_at_openapi_json(api: ApiClient) -> None:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    assert response.body == _spec()


@pytest.mark.skipif(
    shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None,
    reason="schemathesis is not installed in the project virtualenv",
)
@pytest.mark.slow
def test_fuzzing_finds_no_server_error_and_no_response_off_the_spec(
    local_server: LocalServer, tmp_path: Path
) -> None:
    """Requests generated from the spec against `chalice local`, bounded in examples and time."""
    for kind, body in (
        ("root", {"fqdn": "example.com"}),
        ("intermediate", {"fqdn": "cell.example.com", "path_length": 0}),
    ):
        assert requests.post(f"{local_server.url}/certificates/{kind}", json=body, timeout=10).ok
    # AWS IoT registration answers 501 on the local backend by design (docs/api.md): for the two
    # operations that can ask for it, a 501 is no server error; every other 5xx still is.
    (tmp_path / "schemathesis.toml").write_text(
        "".join(
            f'[[operations]]\ninclude-name = "POST {path}"\n'
            'checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "501"]\n'
            for path in ("/certificates/device", "/certificates/{certificate}/aws-iot/register")
        )
    )
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(schemathesis), "run", f"{local_server.url}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance",
         "--max-examples", "8", "--max-time", "25", "--workers", "1", "--seed", "20261123",
         "--no-color", "--report-dir", str(tmp_path),
         "--suppress-health-check", "filter_too_much"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Traceback" not in local_server.log()
    generated = [line for line in result.stdout.splitlines() if " generated, " in line]
    assert generated, result.stdout[-2000:]
    count, _, passed, *_ = generated[-1].replace(",", "").split()
    assert int(count) > 100 and int(passed) == int(count), generated[-1]  # all really ran, passed

"""The OpenAPI description: complete both ways, valid, served, and holding under fuzzing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from openapi_spec_validator import validate

from chalicelib.api.spec import SPEC_PATH
from tests.conftest import LocalServer
from tests.helpers import ApiClient

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


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
    assert implemented == described
    assert len(implemented) == 14


def test_the_description_is_valid_openapi_3_1() -> None:
    spec = _spec()
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_it_is_served_at_openapi_json(api: ApiClient) -> None:
    response = api.get("/openapi.json")
    assert response.status_code == 200
    assert response.body == _spec()


@pytest.mark.skipif(
    shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None,
    reason="schemathesis is not installed in the project virtualenv",
)
def test_fuzzing_finds_no_server_error_and_no_response_off_the_spec(
    local_server: LocalServer, tmp_path: Path
) -> None:
    """Requests generated from the spec against `chalice local`, bounded in examples and time."""
    for kind, body in (
        ("root", {"fqdn": "example.com"}),
        ("intermediate", {"fqdn": "cell.example.com", "path_length": 0}),
    ):
        assert requests.post(f"{local_server.url}/certificates/{kind}", json=body, timeout=10).ok
    schemathesis = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(schemathesis), "run", f"{local_server.url}/openapi.json",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
         "response_schema_conformance",
         "--max-examples", "8", "--max-time", "25", "--workers", "1", "--seed", "20261123",
         "--no-color", "--report-dir", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Traceback" not in local_server.log()
    generated = [line for line in result.stdout.splitlines() if " generated, " in line]
    assert generated, result.stdout[-2000:]
    count, _, passed, *_ = generated[-1].replace(",", "").split()
    assert int(count) > 100 and int(passed) == int(count), generated[-1]  # all really ran, passed

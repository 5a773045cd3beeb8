"""One error shape for every refusal: {"Code", "Message"}, the Code ending in "Error", whether
the app, Chalice or the local server's adapter produced it (its own: tests/e2e)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib import wiring
from tests.helpers import CELL1, JSON_HEADERS, ROOT, ApiClient, create_hierarchy


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.body
    body = json.loads(response.body)
    assert set(body) == {"Code", "Message"}, body
    assert body["Code"].endswith("Error") and body["Message"], body
    return str(body["Code"])


def test_every_kind_of_error_has_the_same_shape(
    api: ApiClient, certstore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = api.chalice_client.http
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)
    post = json.dumps({"fqdn": ROOT})
    bundle = f"/certificates/{device['fqdn']}/bundle?format=pkcs12"
    codes = {
        "invalid": (400, http.post("/certificates/root", headers=JSON_HEADERS, body="{}")),
        "binary-not-accepted": (
            400,
            http.get(bundle, headers={"Accept": "application/json", "X-Bundle-Password": "p"}),
        ),
        "ca-key": (403, http.get(f"/certificates/{CELL1}/private-key")),
        "unknown": (404, http.get(f"/certificates/unknown.{ROOT}")),
        "method": (405, http.request("PUT", "/certificates", headers=JSON_HEADERS, body=post)),
        "taken": (409, http.post("/certificates/root", headers=JSON_HEADERS, body=post)),
        "too-large": (
            413,
            http.post("/certificates/root", headers=JSON_HEADERS, body=b" " * (64 * 1024 + 1)),
        ),
        "media-type": (
            415,
            http.post("/certificates/root", headers={"Content-Type": "text/plain"}, body=post),
        ),
    }
    monkeypatch.setenv("API_TOKEN", "token-1b7e")
    codes["token"] = (401, http.get("/certificates"))
    monkeypatch.delenv("API_TOKEN")
    (certstore.parent / "a-file").write_text("")
    monkeypatch.setenv("CERTSTORE_DIR", str(certstore.parent / "a-file"))
    wiring.reset()  # the service is built again, on a store that cannot be made
    codes["fault"] = (500, http.get("/certificates"))

    assert {name: _error(response, status) for name, (status, response) in codes.items()} == {
        "invalid": "BadRequestError",
        "binary-not-accepted": "BadRequestError",
        "ca-key": "ForbiddenError",
        "unknown": "NotFoundError",
        "method": "MethodNotAllowedError",
        "taken": "ConflictError",
        "too-large": "EntityTooLargeError",
        "media-type": "UnsupportedMediaTypeError",
        "token": "UnauthorizedError",
        "fault": "InternalServerError",
    }
    media_type = json.loads(codes["media-type"][1].body)["Message"]
    assert media_type.endswith(
        "send the body as JSON, with the header Content-Type: application/json"
    )

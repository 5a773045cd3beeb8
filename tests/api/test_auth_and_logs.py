"""Local bearer-token authentication on every route, and JSON logs that never hold a secret."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.api.documents import PUBLIC_ROUTES
from chalicelib.api.portal import PORTAL_ROUTES
from tests.helpers import JSON_HEADERS, ApiClient, create_hierarchy

TOKEN = "test-token-5f2b9c"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PKCS12_PASSWORD = "bundle-password-77ad"
CA_PASSPHRASE = "ca-passphrase-31e0"


def _concrete(path: str) -> str:
    return path.replace("{certificate}", "example.com")


def _routes() -> list[tuple[str, str]]:
    """Every API route: all the app's routes but the portal's files and CRLs, public by design
    (their own tests: tests/api/test_portal_files.py, test_crls_answer_without_the_token)."""
    from app import app

    return sorted(
        (method, _concrete(path))
        for path, entries in app.routes.items()
        for method in entries
        if (path, method.lower()) not in PORTAL_ROUTES | PUBLIC_ROUTES
    )


def test_crls_answer_without_the_token(authenticated: Any) -> None:
    """A relying party follows a certificate's CRL Distribution Point with no credentials."""
    assert {("/certificates/{certificate}/crl", "get")} == PUBLIC_ROUTES
    for query in ("", "?format=pem"):
        response = authenticated.http.get(f"/certificates/example.com/crl{query}")
        assert response.status_code == 200, response.body
    creating = _call(authenticated, "POST", "/certificates/root", {})
    assert creating.status_code == 401


@pytest.fixture
def authenticated(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The local backend with API_TOKEN and CA_KEY_PASSPHRASE set, and the raw Chalice client."""
    monkeypatch.setenv("CA_KEY_PASSPHRASE", CA_PASSPHRASE)
    create_hierarchy(api)
    monkeypatch.setenv("API_TOKEN", TOKEN)
    yield api.chalice_client


def _call(client: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    body = json.dumps({"fqdn": "new.example.com"}) if method == "POST" else None
    return client.http.request(
        method, path, headers={**JSON_HEADERS, "Accept": "*/*", **headers}, body=body
    )


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
    ids=["missing", "wrong-token", "wrong-scheme", "no-scheme", "longer-token"],
)
def test_every_route_requires_the_token_when_it_is_set(
    authenticated: Any, headers: dict[str, str]
) -> None:
    routes = _routes()
    assert len(routes) >= 10
    for method, path in routes:
        response = _call(authenticated, method, path, headers)
        assert response.status_code == 401, (method, path)
        assert json.loads(response.body)["Code"] == "UnauthorizedError"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_token_opens_every_route(authenticated: Any) -> None:
    for method, path in _routes():
        response = _call(authenticated, method, path, BEARER)
        assert response.status_code != 401, (method, path, response.body)
    listed = authenticated.http.get("/certificates", headers=BEARER)
    assert [item["fqdn"] for item in json.loads(listed.body)["items"]] == ["example.com"]


def test_without_a_token_configured_no_authorization_is_needed(api: ApiClient) -> None:
    create_hierarchy(api)
    assert api.get("/certificates").status_code == 200


def _log_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_logs_are_json_lines_without_keys_tokens_or_passwords(
    authenticated: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    client = authenticated
    capfd.readouterr()

    def post(path: str, body: dict[str, Any], extra: dict[str, str] | None = None) -> Any:
        headers = {**JSON_HEADERS, **BEARER, "Accept": "*/*", **(extra or {})}
        return client.http.post(path, headers=headers, body=json.dumps(body))

    server = json.loads(post("/certificates/server", {"fqdn": "mqtt.servers.example.com"}).body)
    device = json.loads(
        post("/certificates/device", {"parent_fqdn": "cell1.devices.example.com"}).body
    )
    post("/certificates/device", {"parent_fqdn": "cell2.devices.example.com", "count": 3})
    fqdn = device["fqdn"]
    client.http.get(f"/certificates/{fqdn}/private-key", headers=BEARER)
    client.http.get(
        f"/certificates/{fqdn}/bundle?format=pkcs12",
        headers={**BEARER, "Accept": "*/*", "X-Bundle-Password": PKCS12_PASSWORD},
    )
    post(f"/certificates/{fqdn}/bundle", {"format": "pkcs12", "password": PKCS12_PASSWORD})
    post(f"/certificates/{fqdn}/revoke", {"reason": "keyCompromise"})
    client.http.get("/certificates/example.com", headers={"Authorization": "Bearer wrong"})

    captured = capfd.readouterr()
    output = captured.out + captured.err
    secrets = ("PRIVATE KEY", TOKEN, PKCS12_PASSWORD, CA_PASSPHRASE, server["private_key"][40:80])
    for secret in secrets:
        assert secret not in output
    lines = _log_lines(output)
    requests_logged = [line for line in lines if "route" in line]
    assert len(requests_logged) == 8
    request_fields = {
        "time", "level", "request_id", "method", "route", "status", "fqdn", "duration_ms"
    }  # fmt: skip
    for line in requests_logged:
        assert request_fields <= set(line), line
        assert line["request_id"] and line["duration_ms"] >= 0
    assert {"route": "/certificates/{certificate}/revoke", "status": 200, "fqdn": fqdn}.items() <= (
        requests_logged[-2].items()
    )
    assert requests_logged[-1]["status"] == 401
    audits = [line for line in lines if "audit" in line]
    assert [line["audit"] for line in audits] == ["issued"] * 5 + ["revoked"]
    assert audits[0]["fqdn"] == "mqtt.servers.example.com"
    for line in lines:
        assert_time_and_level(line)
    # one line per request: a request that audits one certificate carries its audit on its
    # line; the bulk of three writes a line for each, then its request line without one
    assert len(lines) == len(requests_logged) + 3
    assert [("route" in line, line.get("audit")) for line in lines[:5]] == [
        (True, "issued"), (True, "issued"), (False, "issued"), (False, "issued"),
        (False, "issued"),
    ]  # fmt: skip
    assert set(lines[5]) == request_fields  # the bulk's request line
    assert (
        audits[-1].items()
        >= {
            "route": "/certificates/{certificate}/revoke",
            "status": 200,
            "audit": "revoked",
            "fqdn": fqdn,
            "type": "Client",
            "parent_fqdn": "cell1.devices.example.com",
            "serial": device["serial"],
            "reason": "keyCompromise",
        }.items()
    )
    assert set(audits[-1]) == request_fields | {"audit", "type", "parent_fqdn", "serial", "reason"}


TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def assert_time_and_level(line: dict[str, Any]) -> None:
    """ISO 8601 UTC to the millisecond, within a minute of now, and the level by name."""
    assert TIME.fullmatch(line["time"]), line
    logged = datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert abs(datetime.now(UTC) - logged) < timedelta(minutes=1)
    assert line["level"] == "INFO"


def test_a_root_is_audited_without_a_parent_and_a_409_names_its_fqdn(
    api: ApiClient, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    api.create("root", fqdn="example.com")
    taken = api.post("/certificates/root", {"fqdn": "Example.COM"})
    api.create("intermediate", fqdn="cell1.example.com")
    assert taken.status_code == 409, taken.body

    lines = _log_lines(capfd.readouterr().err)
    requests_logged = [line for line in lines if "route" in line]
    assert [(line["status"], line["fqdn"]) for line in requests_logged] == [
        (201, "example.com"),
        (409, "example.com"),
        (201, "cell1.example.com"),
    ]
    audits = [line for line in lines if "audit" in line]
    assert [(line["fqdn"], line["parent_fqdn"]) for line in audits] == [
        ("example.com", None),
        ("cell1.example.com", "example.com"),
    ]
    for line in lines:
        assert_time_and_level(line)

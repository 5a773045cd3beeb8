"""Requests a web page on another origin can make a browser send: a "simple" POST (no
Content-Type, text/plain, a form) runs nothing (415), nor does a JSON one that says it comes from
another origin (403); what the API's own clients send still works. On every backend."""

from __future__ import annotations

import json

import pytest

from tests.helpers import CELL1, JSON_HEADERS, ApiClient, create_hierarchy

SIMPLE_REQUESTS = {
    "no content type": {},
    "text/plain": {"Content-Type": "text/plain"},
    "a form": {"Content-Type": "application/x-www-form-urlencoded"},
    "multipart": {"Content-Type": "multipart/form-data; boundary=x"},
}


@pytest.mark.parametrize("headers", SIMPLE_REQUESTS.values(), ids=SIMPLE_REQUESTS.keys())
def test_a_simple_cross_site_post_runs_nothing(
    backend_api: ApiClient, headers: dict[str, str]
) -> None:
    api = backend_api
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)["fqdn"]
    http = api.chalice_client.http
    attempts = {
        "create": ("/certificates/root", json.dumps({"fqdn": "attacker.example"})),
        "revoke": (f"/certificates/{device}/revoke", ""),
        "revoke with a body": (f"/certificates/{device}/revoke", '{"reason": "keyCompromise"}'),
        "renew": (f"/certificates/{device}/renew", "{}"),
    }
    for name, (path, body) in attempts.items():
        response = http.post(path, headers=headers, body=body)
        assert response.status_code == 415, name
        error = json.loads(response.body)
        assert error["Code"] == "UnsupportedMediaTypeError"
        assert "Content-Type: application/json" in error["Message"], error

    assert api.get("/certificates/attacker.example").status_code == 404
    current = api.get(f"/certificates/{device}").body
    assert (current["status"], current["generation"]) == ("active", 1)


def test_a_json_post_from_another_origin_is_refused(backend_api: ApiClient) -> None:
    api = backend_api
    create_hierarchy(api)
    http = api.chalice_client.http
    body = json.dumps({"fqdn": "attacker.example"})
    for origin in ("https://attacker.example", "null", "http://127.0.0.1:9999"):
        response = http.post(
            "/certificates/root",
            headers={**JSON_HEADERS, "Origin": origin, "Host": "127.0.0.1:8000"},
            body=body,
        )
        assert response.status_code == 403, origin
        assert json.loads(response.body)["Code"] == "ForbiddenError"
        assert origin in json.loads(response.body)["Message"]
    assert api.get("/certificates/attacker.example").status_code == 404

    # The portal, on the API's own origin, and clients that send no Origin (curl, iotcert).
    same = http.post(
        "/certificates/root",
        headers={**JSON_HEADERS, "Origin": "http://127.0.0.1:8000", "Host": "127.0.0.1:8000"},
        body=body,
    )
    assert same.status_code == 201, same.body
    assert api.post("/certificates/root", {"fqdn": "curl.example"}).status_code == 201


def test_an_empty_json_body_and_a_charset_are_accepted(api: ApiClient) -> None:
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)["fqdn"]
    http = api.chalice_client.http
    revoked = http.post(
        f"/certificates/{device}/revoke",
        headers={"Content-Type": "Application/JSON; charset=utf-8"},
        body="",
    )
    assert revoked.status_code == 200, revoked.body
    assert json.loads(revoked.body)["status"] == "revoked"


def test_safe_methods_and_unknown_methods_are_not_asked_for_json(api: ApiClient) -> None:
    http = api.chalice_client.http
    assert http.get("/certificates").status_code == 200
    assert http.request("PUT", "/certificates", body="x").status_code == 405

"""The portal's files: served from the package with their types and a strict CSP, public while
every API route keeps its authentication."""

from __future__ import annotations

import json

import pytest

from chalicelib.api.portal import PORTAL_DIR
from tests.helpers import ApiClient

TOKEN = "portal-test-token"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/portal", "text/html; charset=utf-8"),
        ("/portal/portal.js", "text/javascript; charset=utf-8"),
        ("/portal/x509.js", "text/javascript; charset=utf-8"),
        ("/portal/portal.css", "text/css; charset=utf-8"),
        ("/portal/aws4fetch.LICENSE.txt", "text/plain; charset=utf-8"),
    ],
)
def test_each_file_has_its_type_and_a_policy_without_inline_code(
    api: ApiClient, path: str, content_type: str
) -> None:
    response = api.chalice_client.http.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == content_type
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "connect-src 'self';" in policy  # no Cognito endpoint unless the portal is deployed


def test_an_unknown_file_or_a_path_outside_the_directory_is_a_404(api: ApiClient) -> None:
    for path in ("/portal/missing.js", "/portal/..%2Fopenapi.yaml", "/portal/index"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.body["Code"] == "NotFoundError"


def test_the_page_uses_no_inline_script_or_style() -> None:
    page = (PORTAL_DIR / "index.html").read_text()
    assert "<script>" not in page and "style=" not in page and "<style" not in page
    assert 'src="portal/portal.js"' in page  # relative: the API Gateway stage prefix is kept


def test_the_files_are_public_while_the_api_asks_for_the_token(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_TOKEN", TOKEN)
    assert api.get("/portal").status_code == 200
    config = api.get("/portal/config.json")
    assert config.status_code == 200
    assert config.body == {"auth": {"mode": "token"}}
    assert TOKEN not in json.dumps(config.body)
    assert api.get("/certificates").status_code == 401
    assert api.post("/portal", {}).status_code in (401, 405)  # only GET is public


def test_the_config_names_cognito_only_when_the_portal_is_deployed(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert api.get("/portal/config.json").body == {"auth": {"mode": "none"}}
    for name, value in {
        "PORTAL_COGNITO_REGION": "eu-central-1",
        "PORTAL_USER_POOL_ID": "eu-central-1_abc",
        "PORTAL_USER_POOL_CLIENT_ID": "client",
        "PORTAL_IDENTITY_POOL_ID": "eu-central-1:1234",
    }.items():
        monkeypatch.setenv(name, value)
    response = api.chalice_client.http.get("/portal/config.json")
    assert json.loads(response.body)["auth"]["mode"] == "cognito"
    policy = response.headers["Content-Security-Policy"]
    assert "https://cognito-idp.eu-central-1.amazonaws.com" in policy
    assert "https://cognito-identity.eu-central-1.amazonaws.com" in policy


def test_every_vendored_library_ships_with_its_license() -> None:
    license_text = (PORTAL_DIR / "aws4fetch.LICENSE.txt").read_text()
    assert license_text.startswith("Copyright 2018 Michael Hart")
    assert "@license MIT" in (PORTAL_DIR / "aws4fetch.js").read_text()

"""GET /portal: the browser portal's static files, and the configuration the page reads.

The portal is a page over the public JSON API (openapi.yaml); these routes serve only its files,
never data. They are reachable without the API's authentication (the page asks for the token, or
signs in, itself), carry a Content-Security-Policy without `unsafe-inline`, and serve a fixed set
of files from chalicelib/portal, which Chalice packages into the Lambda.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from chalice import Blueprint, NotFoundError, Response

from chalicelib.config import PortalSettings, api_token, portal_settings

PORTAL_DIR = Path(__file__).resolve().parent.parent / "portal"
PORTAL_ROUTES = frozenset({("/portal", "get"), ("/portal/{asset}", "get")})
"""The portal's routes: pages and files, not operations of the API (openapi.yaml)."""
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
CONFIG_ASSET = "config.json"
TRAILING_SLASH_REDIRECT = "../portal"
"""Where /portal/ sends the browser: /portal, relative so that a stage prefix is kept."""
portal = Blueprint(__name__)


@functools.cache
def portal_files() -> dict[str, tuple[str, str]]:
    """Name -> (content, content type) of every file the portal serves, read once."""
    return {
        path.name: (path.read_text(encoding="utf-8"), CONTENT_TYPES[path.suffix])
        for path in sorted(PORTAL_DIR.iterdir())
        if path.is_file() and path.suffix in CONTENT_TYPES
    }


def content_security_policy(settings: PortalSettings) -> str:
    """Only the app's own files run; the page talks to the API, and (signed in through Cognito
    on AWS) to Cognito's endpoints in its region, nothing else."""
    connect = ["'self'"]
    if settings.cognito_region:
        region = settings.cognito_region
        connect += [
            f"https://cognito-idp.{region}.amazonaws.com",
            f"https://cognito-identity.{region}.amazonaws.com",
        ]
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def _response(body: str, content_type: str) -> Response:
    return Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Security-Policy": content_security_policy(portal_settings()),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )


def portal_config() -> dict[str, object]:
    """What the page needs to know to call the API: how it authenticates. No secret is in it."""
    settings = portal_settings()
    if settings.cognito_region:
        auth: dict[str, object] = {
            "mode": "cognito",
            "region": settings.cognito_region,
            "user_pool_id": settings.cognito_user_pool_id,
            "client_id": settings.cognito_client_id,
            "identity_pool_id": settings.cognito_identity_pool_id,
        }
    else:
        auth = {"mode": "token" if api_token() else "none"}
    return {"auth": auth}


def _redirect(location: str) -> Response:
    return Response(
        body="",
        status_code=308,
        headers={
            "Location": location,
            "Content-Type": "text/plain; charset=utf-8",
            "Cache-Control": "no-cache",
        },
    )


@portal.route("/portal", methods=["GET"])
def get_portal_page() -> Response:
    """The page at /portal. `/portal/` (which API Gateway and Chalice route here too) is sent to
    /portal: the page names its files relative to its own address (`portal/portal.js`, so that
    an API Gateway stage prefix is kept), which only /portal resolves. The redirect is relative
    for the same reason; the browser keeps the `#...` of the page asked for."""
    path = (portal.current_request.context or {}).get("path") or ""
    if path.endswith("/portal/"):
        return _redirect(TRAILING_SLASH_REDIRECT)
    content, content_type = portal_files()["index.html"]
    return _response(content, content_type)


@portal.route("/portal/{asset}", methods=["GET"])
def get_portal_asset(asset: str) -> Response:
    if asset == CONFIG_ASSET:
        return _response(json.dumps(portal_config()), "application/json")
    try:
        content, content_type = portal_files()[asset]
    except KeyError:
        raise NotFoundError(f"asset: the portal has no file {asset!r}") from None
    return _response(content, content_type)

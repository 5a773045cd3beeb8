"""Every HTTP request: cross-site refusals, optional bearer-token authentication, then one JSON
log line.

A browser lets any web page send another origin a "simple" request (a form's POST: no
Content-Type, `text/plain`, `application/x-www-form-urlencoded`) without asking first. So a
request with an unsafe method must say `Content-Type: application/json`, which no simple request
can (415 otherwise, an empty body included), and one whose `Origin` is another origin than the
one it was sent to is refused (403): the portal is same-origin, and the API sends no CORS header.

`API_TOKEN` (read per request) turns authentication on for laptop and CI use; AWS stages rely on
IAM (SigV4) at API Gateway instead. Log lines carry the time, level, request id, route, status,
FQDN and duration, never a body, header value, key or token.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import urlsplit

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib.api.documents import PUBLIC_ROUTES
from chalicelib.api.portal import PORTAL_ROUTES
from chalicelib.audit import claim, request_audit
from chalicelib.config import api_token
from chalicelib.errors import InvalidRequest
from chalicelib.names import normalize_fqdn

request_log = logging.getLogger("iot_cert_service.requests")
_SEND_JSON = "send the body as JSON, with the header Content-Type: application/json"
_ERROR_FIELDS = {"Code", "Message"}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPE = "application/json"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time of the record (it may be replaced)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class JsonLineFormatter(logging.Formatter):
    """A JSON line: its time (ISO 8601 UTC, milliseconds) and level, then the fields of the
    message, itself a JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        head = f'{{"time": "{stamp}.{int(record.msecs):03d}Z", "level": "{record.levelname}"'
        message = record.getMessage()
        if message.startswith("{") and message.endswith("}") and len(message) > 2:
            return f"{head}, {message[1:]}"
        return f'{head}, "message": {json.dumps(message)}}}'


def configure_logging() -> None:
    """JSON lines on stderr (CloudWatch on Lambda), once, whatever the host configured."""
    for name in ("iot_cert_service.requests", "iot_cert_service.audit", "iot_cert_service.jobs"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = _StderrHandler()
            handler.setFormatter(JsonLineFormatter())
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


def authorized(authorization: str, token: str) -> bool:
    """Whether an Authorization header value presents the bearer token (in constant time)."""
    scheme, _, presented = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode())


def unauthorized() -> Response:
    return Response(
        body={
            "Code": "UnauthorizedError",
            "Message": "Authorization: Bearer <API_TOKEN> is required",
        },
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def cross_site_refusal(method: str, headers: Any) -> Response | None:
    """What a request an unsafe method sends without JSON, or from another origin, gets."""
    if method.upper() in SAFE_METHODS:
        return None
    sent = headers.get("content-type")
    if sent is None or media_type(sent) != JSON_TYPE:
        said = "no Content-Type" if sent is None else f"Content-Type {media_type(sent) or sent!r}"
        return Response(
            body={
                "Code": "UnsupportedMediaTypeError",
                "Message": f"{method.upper()} with {said} (an empty body too): {_SEND_JSON}",
            },
            status_code=415,
        )
    origin = headers.get("origin")
    if origin is not None and not same_origin(origin, headers.get("host")):
        return Response(
            body={
                "Code": "ForbiddenError",
                "Message": f"Origin {origin} is not this API's origin: no cross-site requests",
            },
            status_code=403,
        )
    return None


def same_origin(origin: str, host: str | None) -> bool:
    """Whether a browser's Origin header names the host the request was sent to (`null`, sent
    by sandboxed frames and local files, never does)."""
    if host is None:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()


def _is_public(request: Request) -> bool:
    """The portal's own files (chalicelib/api/portal.py) are public: the page asks for the
    token itself; so are CRLs (chalicelib/api/documents.py). Every other route stays behind
    the token."""
    route = (request.context or {}).get("resourcePath")
    return request.method == "GET" and (
        (route, "get") in PORTAL_ROUTES or (route, "get") in PUBLIC_ROUTES
    )


def _fqdn(request: Request, response: Response) -> str | None:
    """The certificate's FQDN: the response's, the path's, or, for a 409 (the FQDN is taken),
    the body's."""
    if isinstance(response.body, dict) and isinstance(response.body.get("fqdn"), str):
        return response.body["fqdn"]
    named = (request.uri_params or {}).get("certificate")
    if named is None and response.status_code == 409:
        return _body_fqdn(request)
    return named


def _body_fqdn(request: Request) -> str | None:
    try:
        body = json.loads(request.raw_body or b"")
        return normalize_fqdn(body.get("fqdn"), "fqdn") if isinstance(body, dict) else None
    except (ValueError, InvalidRequest):
        return None


def _error_named(response: Response) -> Response:
    """Every error's Code ends in "Error", as the app's own do: Chalice names a few of its own
    answers otherwise (415 `UnsupportedMediaType`, and `BadRequest` for a binary response the
    Accept header does not admit)."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == _ERROR_FIELDS:
        code = body["Code"]
        if isinstance(code, str) and not code.endswith("Error"):
            body = response.body = {**body, "Code": f"{code}Error"}
        if response.status_code == 415:
            response.body = {**body, "Message": f"{body['Message']}: {_SEND_JSON}"}
    return response


def _answer(
    app: Chalice, request: Request, get_response: Callable[[Request], Response]
) -> Response:
    token = api_token()
    route = app.routes.get((request.context or {}).get("resourcePath") or "", {})
    # A method no route has is answered 405 first: it would run nothing anyway.
    refused = (
        cross_site_refusal(request.method, request.headers) if request.method in route else None
    )
    if refused is not None:
        return refused
    if (
        token
        and not _is_public(request)
        and not authorized(request.headers.get("authorization", ""), token)
    ):
        return unauthorized()
    return _error_named(get_response(request))


def register(app: Chalice) -> None:
    @app.middleware("http")
    def authenticate_and_log(
        request: Request, get_response: Callable[[Request], Response]
    ) -> Response:
        started = time.perf_counter()
        with request_audit() as audited:
            response = _answer(app, request, get_response)
            context = getattr(app, "lambda_context", None)
            line: dict[str, Any] = {
                "request_id": getattr(context, "aws_request_id", None)
                or (request.context or {}).get("requestId"),
                "method": request.method,
                "route": (request.context or {}).get("resourcePath"),
                "status": response.status_code,
                "fqdn": _fqdn(request, response),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                **claim(audited),
            }
        request_log.info(json.dumps(line))
        return response

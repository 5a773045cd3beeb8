"""Every HTTP request: optional bearer-token authentication, then one JSON log line.

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

from chalice import Chalice, Response
from chalice.app import Request

from chalicelib.api.documents import PUBLIC_ROUTES
from chalicelib.api.portal import PORTAL_ROUTES
from chalicelib.config import api_token
from chalicelib.errors import InvalidRequest
from chalicelib.names import normalize_fqdn

request_log = logging.getLogger("iot_cert_service.requests")
_SEND_JSON = "send the body as JSON, with the header Content-Type: application/json"
_ERROR_FIELDS = {"Code", "Message"}


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
    for name in ("iot_cert_service.requests", "iot_cert_service.audit"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = _StderrHandler()
            handler.setFormatter(JsonLineFormatter())
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode())


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


def register(app: Chalice) -> None:
    @app.middleware("http")
    def authenticate_and_log(
        request: Request, get_response: Callable[[Request], Response]
    ) -> Response:
        started = time.perf_counter()
        token = api_token()
        if token and not _is_public(request) and not _authorized(request, token):
            response = Response(
                body={
                    "Code": "UnauthorizedError",
                    "Message": "Authorization: Bearer <API_TOKEN> is required",
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            response = _error_named(get_response(request))
        context = getattr(app, "lambda_context", None)
        line: dict[str, Any] = {
            "request_id": getattr(context, "aws_request_id", None)
            or (request.context or {}).get("requestId"),
            "method": request.method,
            "route": (request.context or {}).get("resourcePath"),
            "status": response.status_code,
            "fqdn": _fqdn(request, response),
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        request_log.info(json.dumps(line))
        return response

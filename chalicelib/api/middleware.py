"""Every HTTP request: optional bearer-token authentication, then one JSON log line.

`API_TOKEN` (read per request) turns authentication on for laptop and CI use; AWS stages rely on
IAM (SigV4) at API Gateway instead. Log lines carry the request id, route, status, FQDN and
duration, never a body, header value, key or token.
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

from chalicelib.config import api_token

request_log = logging.getLogger("iot_cert_service.requests")


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time of the record (it may be replaced)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging() -> None:
    """JSON lines on stderr (CloudWatch on Lambda), once, whatever the host configured."""
    for name in ("iot_cert_service.requests", "iot_cert_service.audit"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False


def _authorized(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.encode(), token.encode())


def _fqdn(request: Request, response: Response) -> str | None:
    if isinstance(response.body, dict) and isinstance(response.body.get("fqdn"), str):
        return response.body["fqdn"]
    return (request.uri_params or {}).get("certificate")


def register(app: Chalice) -> None:
    @app.middleware("http")
    def authenticate_and_log(
        request: Request, get_response: Callable[[Request], Response]
    ) -> Response:
        started = time.perf_counter()
        token = api_token()
        if token and not _authorized(request, token):
            response = Response(
                body={
                    "Code": "UnauthorizedError",
                    "Message": "Authorization: Bearer <API_TOKEN> is required",
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        else:
            response = get_response(request)
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

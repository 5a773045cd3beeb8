"""GET /openapi.json: the OpenAPI 3.1 description kept in chalicelib/openapi.yaml, with the request
bodies' schemas made from the fields' declarations (chalicelib/api/fields.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.errors import http_errors
from chalicelib.api.fields import REQUESTS, request_schema

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"
spec = Blueprint(__name__)


@functools.cache
def openapi_document() -> dict[str, Any]:
    """Parsed on first request, not at import: YAML parsing stays off the cold start."""
    import yaml

    document: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    schemas = document["components"]["schemas"]
    for request, name in REQUESTS.items():
        schemas[name] = request_schema(request)
    return document


@spec.route("/openapi.json", methods=["GET"])
@http_errors(spec)
def get_openapi() -> Response:
    return Response(
        body=json.dumps(openapi_document()), headers={"Content-Type": "application/json"}
    )

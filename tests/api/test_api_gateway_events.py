"""The app as API Gateway invokes it once terraform/ lists `*/*` as a binary media type (see
tests/unit/test_chalice_tf.py): a JSON body arrives base64-encoded, and the app still reads it."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization


def api_gateway_proxy_event(
    method: str, resource: str, body: bytes | None, certificate: str | None = None
) -> dict[str, Any]:
    """A REST API Lambda proxy event as API Gateway sends it when `*/*` is a binary media type:
    every body base64-encoded, `isBase64Encoded` set."""
    headers = {"Accept": "*/*", "Content-Type": "application/json"}
    path = resource.replace("{certificate}", certificate or "")
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"certificate": certificate} if certificate else None,
        "stageVariables": None,
        "requestContext": {
            "httpMethod": method,
            "resourcePath": resource,
            "path": f"/api{path}",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "stage": "api",
        },
        "body": base64.b64encode(body).decode() if body is not None else None,
        "isBase64Encoded": body is not None,
    }


def test_json_requests_still_work_when_api_gateway_base64_encodes_every_body(
    certstore: Path,
) -> None:
    """The side effect of `*/*`: a JSON body arrives base64-encoded, and Chalice decodes it; JSON
    leaves as text, the DER CRL base64-encoded for API Gateway to turn into bytes."""
    from app import app

    created = app(
        api_gateway_proxy_event("POST", "/certificates/root", b'{"fqdn": "example.com"}'), None
    )
    assert created["statusCode"] == 201, created["body"]
    assert not created.get("isBase64Encoded")  # JSON goes out as text whatever the Accept
    assert json.loads(created["body"])["fqdn"] == "example.com"
    listed = app(api_gateway_proxy_event("GET", "/certificates", None), None)
    assert [item["fqdn"] for item in json.loads(listed["body"])["items"]] == ["example.com"]
    crl = app(
        api_gateway_proxy_event("GET", "/certificates/{certificate}/crl", None, "example.com"),
        None,
    )
    assert crl["statusCode"] == 200 and crl["isBase64Encoded"] is True  # for API Gateway to decode
    der = base64.b64decode(crl["body"])
    assert x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.DER) == der

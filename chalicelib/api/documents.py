"""Routes about one certificate beyond fetching it: revocation, deletion, CRLs, bundles,
private keys."""

from __future__ import annotations

import base64
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.errors import http_errors
from chalicelib.api.parsing import read_json_object
from chalicelib.api.queries import (
    parse_bundle_get,
    parse_bundle_post,
    parse_crl_format,
    parse_delete_query,
    parse_generation_query,
    parse_revocation_reason,
)
from chalicelib.api.views import deleted_view, revoked_view
from chalicelib.bundles import PEM_TYPE, PKCS12_TYPE, Bundle
from chalicelib.names import decode_certificate_name
from chalicelib.pki_documents import crl_bytes
from chalicelib.wiring import certificate_service

documents = Blueprint(__name__)
_errors = http_errors(documents)
CRL_TYPE = "application/pkix-crl"
BINARY_TYPES = (PKCS12_TYPE,)
"""`app.api.binary_types`: the response types that leave the function base64-encoded.

The rule, end to end: Chalice base64-encodes a body and sets `isBase64Encoded` when the response's
Content-Type is one of these, and answers 400 instead when the request has no Accept header or one
naming neither such a type nor `*/*` (anywhere in it). API Gateway (REST API, Lambda proxy
integration) then decodes such a body to bytes only when the request's FIRST Accept media type
matches one of the API's binary media types, and otherwise hands the client the base64 text. curl
and Python requests send `Accept: */*`, which no concrete type matches, so the deployed API lists
`*/*` as well (devtools/chalice_tf.py adds it), which also makes API Gateway decode any body
marked `isBase64Encoded`, whatever the Accept. JSON and PEM responses are never encoded and pass
as text whatever the Accept. The DER CRL is not in this list: it goes out to every client (see
`AnyAcceptBinary`).
"""
CRL_ROUTE = ("/certificates/{certificate}/crl", "get")
PUBLIC_ROUTES = frozenset({CRL_ROUTE})
"""Routes anyone may call, without the API's token or SigV4: a CRL is public by nature, and a
relying party following a certificate's CRL Distribution Point has no credentials to send."""


class AnyAcceptBinary(Response):
    """A binary body for any request, whatever its Accept header: a client that sends none, or
    `*/*` or `application/*`, takes any type (RFC 9110), and `openssl verify -crl_download`
    sends none. Its type is not among the app's binary types, so Chalice's check of the Accept
    header lets it pass; it encodes itself the way API Gateway (with `*/*` among its binary
    media types) and Chalice's local gateway decode a binary body."""

    def to_dict(self, binary_types: list[str] | None = None) -> dict[str, Any]:
        response = super().to_dict(None)
        response["body"] = base64.b64encode(self.body).decode("ascii")
        response["isBase64Encoded"] = True
        return response


def _fqdn(certificate: str) -> str:
    return decode_certificate_name(certificate, "certificate")


@documents.route("/certificates/{certificate}", methods=["DELETE"])
@_errors
def delete_certificate(certificate: str) -> dict[str, Any]:
    """A revoked certificate's documents and inventory item; with `cascade=true`, a revoked
    CA's with everything it issued. Its revocation stays on its parent's CRL."""
    cascade = parse_delete_query(documents.current_request.query_params)
    return deleted_view(certificate_service().delete(_fqdn(certificate), cascade))


@documents.route("/certificates/{certificate}/revoke", methods=["POST"])
@_errors
def revoke_certificate(certificate: str) -> dict[str, Any]:
    body = read_json_object(documents.current_request.raw_body, empty_is_object=True)
    revoked = certificate_service().revoke(_fqdn(certificate), parse_revocation_reason(body))
    return revoked_view(revoked)


@documents.route("/certificates/{certificate}/crl", methods=["GET"])
@_errors
def get_certificate_revocation_list(certificate: str) -> Response:
    crl_format = parse_crl_format(documents.current_request.query_params)
    crl = certificate_service().certificate_revocation_list(_fqdn(certificate))
    if crl_format == "der":
        return AnyAcceptBinary(body=crl_bytes(crl, "der"), headers={"Content-Type": CRL_TYPE})
    return _file_response(crl_bytes(crl, crl_format), PEM_TYPE)


def _file_response(content: bytes, content_type: str, filename: str | None = None) -> Response:
    """Binary types go out as bytes (base64 through API Gateway), PEM as text."""
    headers: dict[str, str | list[str]] = {"Content-Type": content_type}
    if filename:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    body: bytes | str = content if content_type in BINARY_TYPES else content.decode("ascii")
    return Response(body=body, headers=headers)


def _bundle_response(bundle: Bundle) -> Response:
    return _file_response(bundle.content, bundle.content_type, bundle.filename)


@documents.route("/certificates/{certificate}/bundle", methods=["GET"])
@_errors
def get_bundle(certificate: str) -> Response:
    request = documents.current_request
    bundle_format, password = parse_bundle_get(request.query_params, request.headers)
    serial = parse_generation_query(request.query_params, frozenset({"format"}))
    return _bundle_response(
        certificate_service().bundle(_fqdn(certificate), bundle_format, password, serial)
    )


@documents.route("/certificates/{certificate}/bundle", methods=["POST"])
@_errors
def post_bundle(certificate: str) -> Response:
    request = documents.current_request
    bundle_format, password = parse_bundle_post(read_json_object(request.raw_body))
    serial = parse_generation_query(request.query_params)
    return _bundle_response(
        certificate_service().bundle(_fqdn(certificate), bundle_format, password, serial)
    )


@documents.route("/certificates/{certificate}/private-key", methods=["GET"])
@_errors
def get_private_key(certificate: str) -> dict[str, Any]:
    fqdn = _fqdn(certificate)
    serial = parse_generation_query(documents.current_request.query_params)
    return {"fqdn": fqdn, "private_key": certificate_service().private_key(fqdn, serial)}

"""Routes under /certificates."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.errors import http_errors
from chalicelib.api.parsing import parse_issue_request, parse_list_query, read_json_object
from chalicelib.api.views import certificate_view, issued_view, list_item_view
from chalicelib.model import CertType, IssuedCertificate
from chalicelib.names import decode_certificate_name
from chalicelib.wiring import certificate_service

certificates = Blueprint(__name__)
_errors = http_errors(certificates)


def _issue_request(cert_type: CertType) -> Any:
    return parse_issue_request(cert_type, read_json_object(certificates.current_request.raw_body))


def _created(issued: IssuedCertificate) -> Response:
    return Response(body=issued_view(issued), status_code=201)


@certificates.route("/certificates/root", methods=["POST"])
@_errors
def create_root_certificate() -> Response:
    return _created(certificate_service().create_root(_issue_request(CertType.ROOT)))


@certificates.route("/certificates/intermediate", methods=["POST"])
@_errors
def create_intermediate_certificate() -> Response:
    return _created(
        certificate_service().create_intermediate(_issue_request(CertType.INTERMEDIATE))
    )


@certificates.route("/certificates/server", methods=["POST"])
@_errors
def create_server_certificate() -> Response:
    return _created(certificate_service().create_server(_issue_request(CertType.SERVER)))


@certificates.route("/certificates/device", methods=["POST"])
@_errors
def create_device_certificate() -> Response:
    return _created(certificate_service().create_device(_issue_request(CertType.CLIENT)))


@certificates.route("/certificates", methods=["GET"])
@_errors
def list_certificates() -> dict[str, Any]:
    parent, limit, next_token = parse_list_query(certificates.current_request.query_params)
    page = certificate_service().list_certificates(parent, limit, next_token)
    return {"items": [list_item_view(item) for item in page.items], "next_token": page.next_token}


@certificates.route("/certificates/{certificate}", methods=["GET"])
@_errors
def get_certificate(certificate: str) -> dict[str, Any]:
    fqdn = decode_certificate_name(certificate, "certificate")
    return certificate_view(certificate_service().get_certificate(fqdn))

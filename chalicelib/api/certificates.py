"""Routes that issue, list and fetch certificates."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.errors import http_errors
from chalicelib.api.parsing import (
    MAX_BULK_BODY_BYTES,
    parse_issue_request,
    parse_renew_request,
    read_json_object,
)
from chalicelib.api.queries import (
    parse_generation_query,
    parse_list_query,
    parse_no_parameters,
)
from chalicelib.api.views import (
    bulk_view,
    certificate_view,
    history_view,
    issued_view,
    list_item_view,
)
from chalicelib.model import CertType, IssuedCertificate, IssueRequest
from chalicelib.names import decode_certificate_name
from chalicelib.wiring import certificate_service

certificates = Blueprint(__name__)
_errors = http_errors(certificates)


def _issue_request(cert_type: CertType, body_limit: int | None = None) -> IssueRequest:
    raw_body = certificates.current_request.raw_body
    body = (
        read_json_object(raw_body) if body_limit is None else read_json_object(raw_body, body_limit)
    )
    return parse_issue_request(cert_type, body)


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
    """One device, or with `count` / `csrs` many: then `{"items": [...], "chain", "count"}`."""
    request = _issue_request(CertType.CLIENT, MAX_BULK_BODY_BYTES)
    issued = certificate_service().create_devices(request)
    if not request.is_bulk:
        return _created(issued[0])
    return Response(body=bulk_view(issued), status_code=201)


@certificates.route("/certificates", methods=["GET"])
@_errors
def list_certificates() -> dict[str, Any]:
    query = parse_list_query(certificates.current_request.query_params)
    page = certificate_service().list_certificates(
        query.parent, query.limit, query.next_token, query.expiring_within_days, query.status
    )
    return {"items": [list_item_view(item) for item in page.items], "next_token": page.next_token}


@certificates.route("/certificates/{certificate}", methods=["GET"])
@_errors
def get_certificate(certificate: str) -> dict[str, Any]:
    serial = parse_generation_query(certificates.current_request.query_params)
    details = certificate_service().get_certificate(
        decode_certificate_name(certificate, "certificate"), serial
    )
    return certificate_view(details.record, details.revocation)


@certificates.route("/certificates/{certificate}/renew", methods=["POST"])
@_errors
def renew_certificate(certificate: str) -> Response:
    """A new generation: same name, subject and issuer; new serial, validity and (unless
    `reuse_key`, or for a CA) key."""
    body = read_json_object(certificates.current_request.raw_body, empty_is_object=True)
    request = parse_renew_request(body)
    fqdn = decode_certificate_name(certificate, "certificate")
    return _created(certificate_service().renew(fqdn, request))


@certificates.route("/certificates/{certificate}/history", methods=["GET"])
@_errors
def get_certificate_history(certificate: str) -> dict[str, Any]:
    parse_no_parameters(certificates.current_request.query_params)
    fqdn = decode_certificate_name(certificate, "certificate")
    return history_view(fqdn, certificate_service().history(fqdn))

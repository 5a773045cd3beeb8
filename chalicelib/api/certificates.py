"""Routes that issue, list and fetch certificates."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api.errors import LIST_FIELDS, http_errors
from chalicelib.api.paging import (
    decode_expiry_token,
    decode_history_token,
    decode_page_token,
    encode_expiry_token,
    encode_history_token,
    encode_page_token,
)
from chalicelib.api.parsing import (
    MAX_BULK_BODY_BYTES,
    parse_issue_request,
    parse_renew_request,
    read_json_object,
)
from chalicelib.api.queries import (
    parse_expiring_query,
    parse_generation_query,
    parse_history_query,
    parse_list_query,
)
from chalicelib.api.views import (
    bulk_view,
    certificate_view,
    expiring_item_view,
    history_view,
    issued_view,
    list_item_view,
)
from chalicelib.model import ROOT_PARENT, CertType, IssuedCertificate, IssueRequest
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
@http_errors(certificates, LIST_FIELDS)
def list_certificates() -> dict[str, Any]:
    query = parse_list_query(certificates.current_request.query_params)
    parent_key = query.parent or ROOT_PARENT
    after = decode_page_token(query.next_token, parent_key) if query.next_token else None
    page = certificate_service().list_certificates(
        query.parent, query.limit, after, query.expiring_within_days, query.status
    )
    token = encode_page_token(parent_key, page.last_fqdn) if page.last_fqdn else None
    return {"items": [list_item_view(item) for item in page.items], "next_token": token}


@certificates.route("/certificates/expiring", methods=["GET"])
@_errors
def list_expiring_certificates() -> dict[str, Any]:
    """Active certificates of every CA expiring within `within_days` (default 30), soonest
    first, a page at a time."""
    query = parse_expiring_query(certificates.current_request.query_params)
    after = decode_expiry_token(query.next_token) if query.next_token else None
    service = certificate_service()
    now = service.clock()
    page = service.list_expiring(query.within_days, query.limit, after, now)
    return {
        "items": [expiring_item_view(item, now) for item in page.items],
        "next_token": encode_expiry_token(page.last) if page.last else None,
    }


@certificates.route("/certificates/{certificate}", methods=["GET"])
@_errors
def get_certificate(certificate: str) -> dict[str, Any]:
    serial = parse_generation_query(certificates.current_request.query_params)
    details = certificate_service().get_certificate(
        decode_certificate_name(certificate, "certificate"), serial
    )
    return certificate_view(details)


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
    """Every generation, oldest first, a page at a time (`limit`, `next_token`)."""
    fqdn = decode_certificate_name(certificate, "certificate")
    query = parse_history_query(certificates.current_request.query_params)
    start = decode_history_token(query.next_token, fqdn) if query.next_token else 1
    page = certificate_service().history(fqdn, query.limit, start)
    token = None
    if page.next_generation is not None:
        token = encode_history_token(fqdn, page.next_generation)
    return history_view(page, token)

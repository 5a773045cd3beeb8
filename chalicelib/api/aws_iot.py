"""Routes that onboard a CA to AWS IoT Core."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.errors import http_errors
from chalicelib.api.parsing import (
    parse_iot_registration,
    parse_registration_code,
    read_json_object,
)
from chalicelib.api.views import iot_registration_view, verification_view
from chalicelib.names import decode_certificate_name
from chalicelib.wiring import certificate_service

aws_iot = Blueprint(__name__)
_errors = http_errors(aws_iot)


@aws_iot.route("/certificates/{certificate}/aws-iot/verification-certificate", methods=["POST"])
@_errors
def create_aws_iot_verification_certificate(certificate: str) -> dict[str, Any]:
    """For `aws iot register-ca-certificate --verification-cert`: CN = the registration code."""
    code = parse_registration_code(read_json_object(aws_iot.current_request.raw_body))
    fqdn = decode_certificate_name(certificate, "certificate")
    return verification_view(certificate_service().aws_iot_verification_certificate(fqdn, code))


@aws_iot.route("/certificates/{certificate}/aws-iot/register", methods=["POST"])
@_errors
def register_with_aws_iot(certificate: str) -> dict[str, Any]:
    body = read_json_object(aws_iot.current_request.raw_body, empty_is_object=True)
    request = parse_iot_registration(body)
    fqdn = decode_certificate_name(certificate, "certificate")
    return iot_registration_view(certificate_service().register_with_aws_iot(fqdn, request))

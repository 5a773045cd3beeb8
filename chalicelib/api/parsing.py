"""Turns request bodies into validated service inputs (400 naming the field): each field as
chalicelib.api.fields declares it, then the rules between fields."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.api.fields import (
    DEVICE,
    INTERMEDIATE,
    IOT_REGISTRATION,
    IOT_VERIFICATION,
    MAX_AWS_IOT_BULK,
    MAX_BULK_BY_KEY_TYPE,
    RENEW,
    ROOT,
    SERVER,
    Checked,
    validate_body,
)
from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.iot_onboarding import DEFAULT_MODE, JITP, IotCaRequest
from chalicelib.model import (
    AwsIotOptions,
    CertType,
    IssueRequest,
    KeyType,
    RenewRequest,
    SubjectDetails,
)

MAX_BODY_BYTES = 64 * 1024
MAX_BULK_BODY_BYTES = 1024 * 1024  # POST /certificates/device: room for 1000 CSRs
REQUEST_OF_TYPE = {
    CertType.ROOT: ROOT,
    CertType.INTERMEDIATE: INTERMEDIATE,
    CertType.SERVER: SERVER,
    CertType.CLIENT: DEVICE,
}


def read_json_object(
    raw_body: bytes | str | None, limit: int = MAX_BODY_BYTES, empty_is_object: bool = False
) -> dict[str, Any]:
    body = raw_body.encode() if isinstance(raw_body, str) else raw_body or b""
    if len(body) > limit:
        raise PayloadTooLarge(f"body: {len(body)} bytes is over the limit of {limit}")
    if empty_is_object and not body.strip():
        return {}
    try:
        parsed = json.loads(body, object_pairs_hook=_without_duplicate_keys)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise InvalidRequest("body", "must be a JSON object") from err
    if not isinstance(parsed, dict):
        raise InvalidRequest("body", "must be a JSON object")
    return parsed


def _without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when a key repeats: parsers differ on which value wins."""
    parsed = dict(pairs)
    if len(parsed) == len(pairs):
        return parsed
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise InvalidRequest(key, "is given more than once in the body; give each field once")
        seen.add(key)
    return parsed


def parse_issue_request(cert_type: CertType, body: dict[str, Any]) -> IssueRequest:
    request = REQUEST_OF_TYPE[cert_type]
    values = validate_body(request, body)
    _check_key_sources(values)
    return IssueRequest(
        cert_type=cert_type,
        fqdn=values.get("fqdn"),
        parent_fqdn=values.get("parent_fqdn"),
        subject=SubjectDetails(
            country=values.get("country"),
            state=values.get("state"),
            organization=values.get("organization"),
        ),
        validity_days=values.get("validity_days"),
        key_type=KeyType(values.get("key_type", KeyType.EC_P256.value)),
        sans=values.get("sans", ()),
        path_length=values.get("path_length", 0),
        csr=values.get("csr"),
        count=values.get("count"),
        csrs=values.get("csrs", ()),
        aws_iot=_aws_iot_options(values),
        key_store=values.get("key_store"),
    )


def parse_renew_request(body: dict[str, Any]) -> RenewRequest:
    """POST /certificates/{certificate}/renew: every field optional; one source of the new key
    (`key_type`, `csr` or `reuse_key`)."""
    values = validate_body(RENEW, body)
    sources: list[str] = [name for name in ("key_type", "csr") if name in values]
    if values.get("reuse_key") is True:
        sources.insert(0, "reuse_key")
    if len(sources) > 1:
        raise InvalidRequest(sources[1], f"cannot be combined with {sources[0]}")
    return RenewRequest(
        validity_days=values.get("validity_days"),
        key_type=KeyType(values["key_type"]) if "key_type" in values else None,
        csr=values.get("csr"),
        reuse_key=values.get("reuse_key"),
        revoke_previous=bool(values.get("revoke_previous")),
        serial=values.get("serial"),
    )


def _check_key_sources(values: Checked) -> None:
    """One source of keys: generated (`key_type`, `count`) or the caller's (`csr`, `csrs`)."""
    given = [name for name in ("csr", "count", "csrs") if name in values]
    if len(given) > 1:
        raise InvalidRequest(given[1], f"cannot be combined with {given[0]}")
    if "key_type" in values and given and given[0] != "count":
        raise InvalidRequest(
            "key_type", f"cannot be combined with {given[0]}: the CSR's key decides"
        )
    key_limit = MAX_BULK_BY_KEY_TYPE.get(str(values.get("key_type")))
    count = values.get("count")
    if key_limit is not None and isinstance(count, int) and count > key_limit:
        raise InvalidRequest(
            "count",
            f"must be at most {key_limit} with {values.get('key_type')} keys, whose generation "
            "is slow: a bulk must finish well within API Gateway's 29 s",
        )


THING_REQUIRED = (
    "is required with aws_iot.register: the stack's device policy lets a certificate connect "
    "only while it is attached to a thing (iot:Connection.Thing.IsAttached), so a certificate "
    'registered alone is ACTIVE but never connects. Send "thing": true to make the device\'s '
    'thing, or "thing": false to register the certificate alone and attach it to a thing '
    "yourself"
)


def _aws_iot_options(values: Checked) -> AwsIotOptions | None:
    """Device issuance's `{"register": bool, "thing": bool}`; a thing needs `register`, and
    `register` needs the caller to say whether the service makes the thing: without one the
    registered certificate cannot connect, which a caller must choose knowingly."""
    value = values.get("aws_iot")
    if value is None:
        return None
    register, thing = value.get("register") is True, value.get("thing") is True
    if thing and not register:
        raise InvalidRequest("aws_iot.thing", "needs aws_iot.register: a thing's certificate")
    if register and value.get("thing") is None:
        raise InvalidRequest("aws_iot.thing", THING_REQUIRED)
    size = values.get("count") or len(values.get("csrs") or ()) or 1
    if register and size > MAX_AWS_IOT_BULK:
        raise InvalidRequest(
            "aws_iot.register",
            f"at most {MAX_AWS_IOT_BULK} devices a request are registered with AWS IoT "
            "(four IoT calls each, within API Gateway's 29 s)",
        )
    return AwsIotOptions(register=register, thing=thing)


def parse_registration_code(body: dict[str, Any]) -> str:
    """AWS IoT's registration code (64 hex digits today): letters and digits, 1-64 of them, as
    it becomes the verification certificate's CN."""
    return str(validate_body(IOT_VERIFICATION, body).get("registration_code"))


def parse_iot_registration(body: dict[str, Any]) -> IotCaRequest:
    """POST .../aws-iot/register: `mode` DEFAULT (default) or SNI_ONLY; `provisioning` jitp
    (default) or none; `auto_registration` (default true) must be true for jitp."""
    values = validate_body(IOT_REGISTRATION, body)
    mode = values.get("mode", DEFAULT_MODE)
    provisioning = values.get("provisioning", JITP)
    auto_registration = values.get("auto_registration", True)
    if provisioning == JITP and not auto_registration:
        raise InvalidRequest(
            "auto_registration", "must be true with provisioning jitp: AWS IoT provisions a "
            "device just in time only when its CA allows auto-registration",
        )  # fmt: skip
    return IotCaRequest(mode, auto_registration, provisioning)

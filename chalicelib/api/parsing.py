"""Turns request bodies and query strings into validated service inputs (400 naming the field)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalicelib.api.queries import parse_serial
from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.iot_onboarding import DEFAULT_MODE, JITP, SNI_ONLY_MODE, IotCaRequest
from chalicelib.model import (
    AwsIotOptions,
    CertType,
    IssueRequest,
    KeyType,
    RenewRequest,
    SubjectDetails,
)
from chalicelib.names import (
    MAX_COMMON_NAME_LENGTH,
    normalize_fqdn,
    normalize_subject_alt_name,
)

MAX_BODY_BYTES = 64 * 1024
MAX_BULK_BODY_BYTES = 1024 * 1024  # POST /certificates/device: room for 1000 CSRs
MAX_BULK = 1000
MAX_BULK_BY_KEY_TYPE = {
    KeyType.RSA_2048.value: 100,
    KeyType.RSA_3072.value: 25,
    KeyType.RSA_4096.value: 10,
}
"""RSA keys take long to generate (README, Limits: the slowest accepted bulk is measured by
`make bench` against Lambda's timeout); every other key type, and CSRs, up to MAX_BULK."""
MAX_VALIDITY_DAYS = 36500
MAX_PATH_LENGTH = 8
MAX_SANS = 100

_SUBJECT_FIELDS = {"country", "state", "organization"}
_COMMON_FIELDS = _SUBJECT_FIELDS | {"validity_days", "key_type"}
ALLOWED_FIELDS: dict[CertType, frozenset[str]] = {
    CertType.ROOT: frozenset(_COMMON_FIELDS | {"fqdn"}),
    CertType.INTERMEDIATE: frozenset(_COMMON_FIELDS | {"fqdn", "parent_fqdn", "path_length"}),
    CertType.SERVER: frozenset(_COMMON_FIELDS | {"fqdn", "parent_fqdn", "sans", "csr"}),
    CertType.CLIENT: frozenset(_COMMON_FIELDS | {"parent_fqdn", "csr", "count", "csrs", "aws_iot"}),
}
REQUIRED_FIELD = {
    CertType.ROOT: "fqdn",
    CertType.INTERMEDIATE: "fqdn",
    CertType.SERVER: "fqdn",
    CertType.CLIENT: "parent_fqdn",
}
_TEXT_LIMITS = {"state": 128, "organization": 64}
MAX_AWS_IOT_BULK = 50
"""Devices registered with AWS IoT in one request: each costs up to four IoT calls
(chalicelib.aws_iot.IOT_DEVICE_CALLS), which must finish within API Gateway's 29 s."""
AWS_IOT_DEVICE_FIELDS = frozenset({"register", "thing"})
VERIFICATION_FIELDS = frozenset({"registration_code"})
IOT_REGISTRATION_FIELDS = frozenset({"mode", "auto_registration", "provisioning"})


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
    allowed = ALLOWED_FIELDS[cert_type]
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(unknown[0], f"unknown field; allowed: {', '.join(sorted(allowed))}")
    values = {name: value for name, value in body.items() if value is not None}
    required = REQUIRED_FIELD[cert_type]
    if required not in values:
        raise InvalidRequest(required, "is required")
    _check_key_sources(cert_type, values)
    return IssueRequest(
        cert_type=cert_type,
        fqdn=_certificate_fqdn(values["fqdn"]) if "fqdn" in values else None,
        parent_fqdn=(
            normalize_fqdn(values["parent_fqdn"], "parent_fqdn")
            if "parent_fqdn" in values
            else None
        ),
        subject=SubjectDetails(
            country=_country(values.get("country")),
            state=_text(values, "state"),
            organization=_text(values, "organization"),
        ),
        validity_days=_integer(values, "validity_days", 1, MAX_VALIDITY_DAYS),
        key_type=_key_type(values.get("key_type", KeyType.EC_P256.value)),
        sans=_sans(values.get("sans", [])),
        path_length=_integer(values, "path_length", 0, MAX_PATH_LENGTH) or 0,
        csr=_csr(values.get("csr"), "csr"),
        count=_integer(values, "count", 1, MAX_BULK),
        csrs=_csrs(values.get("csrs")),
        aws_iot=_aws_iot_options(values),
    )


RENEW_FIELDS = frozenset(
    {"validity_days", "key_type", "csr", "reuse_key", "revoke_previous", "serial"}
)


def parse_renew_request(body: dict[str, Any]) -> RenewRequest:
    """POST /certificates/{certificate}/renew: every field optional; one source of the new key
    (`key_type`, `csr` or `reuse_key`)."""
    unknown = sorted(set(body) - RENEW_FIELDS)
    if unknown:
        raise InvalidRequest(
            unknown[0], f"unknown field; allowed: {', '.join(sorted(RENEW_FIELDS))}"
        )
    values = {name: value for name, value in body.items() if value is not None}
    sources: list[str] = [name for name in ("key_type", "csr") if name in values]
    if values.get("reuse_key") is True:
        sources.insert(0, "reuse_key")
    if len(sources) > 1:
        raise InvalidRequest(sources[1], f"cannot be combined with {sources[0]}")
    return RenewRequest(
        validity_days=_integer(values, "validity_days", 1, MAX_VALIDITY_DAYS),
        key_type=_key_type(values["key_type"]) if "key_type" in values else None,
        csr=_csr(values.get("csr"), "csr"),
        reuse_key=_boolean(values, "reuse_key"),
        revoke_previous=bool(_boolean(values, "revoke_previous")),
        serial=parse_serial(values["serial"]) if "serial" in values else None,
    )


def _boolean(values: Mapping[str, Any], field: str, name: str | None = None) -> bool | None:
    value = values.get(field)
    if value is not None and not isinstance(value, bool):
        raise InvalidRequest(name or field, "must be true or false")
    return value


def _check_key_sources(cert_type: CertType, values: Mapping[str, Any]) -> None:
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
            f"must be at most {key_limit} with {values['key_type']} keys, whose generation is "
            "slow: a bulk must finish well within API Gateway's 29 s",
        )
    if values.get("key_type") == KeyType.ED25519.value and cert_type is not CertType.CLIENT:
        raise InvalidRequest("key_type", "ED25519 is for device certificates only")


def _csr(value: object, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "-----BEGIN CERTIFICATE REQUEST-----" not in value:
        raise InvalidRequest(field, "must be a PEM certificate signing request")
    return value


def _csrs(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_BULK:
        raise InvalidRequest("csrs", f"must be a list of 1 to {MAX_BULK} PEM CSRs")
    return tuple(_csr(item, f"csrs[{index}]") or "" for index, item in enumerate(value))


def _certificate_fqdn(value: object) -> str:
    fqdn = normalize_fqdn(value, "fqdn")
    if len(fqdn) > MAX_COMMON_NAME_LENGTH:
        raise InvalidRequest(
            "fqdn",
            f"must be at most {MAX_COMMON_NAME_LENGTH} characters: it is the certificate's "
            "common name, which X.509 limits to 64",
        )
    return fqdn


def _country(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 2 or not (value.isascii() and value.isalpha()):
        raise InvalidRequest("country", "must be a two-letter ISO 3166 country code such as 'DE'")
    return value.upper()


def _text(values: Mapping[str, Any], field: str) -> str | None:
    value = values.get(field)
    if value is None:
        return None
    limit = _TEXT_LIMITS[field]
    if not isinstance(value, str) or not 1 <= len(value) <= limit or not value.isprintable():
        raise InvalidRequest(field, f"must be a string of 1-{limit} printable characters")
    return value


def _integer(values: Mapping[str, Any], field: str, low: int, high: int) -> int | None:
    value = values.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(field, f"must be a whole number from {low} to {high}")
    return value


def _key_type(value: object) -> KeyType:
    if isinstance(value, str) and value in KeyType.__members__.values():
        return KeyType(value)
    allowed = ", ".join(key_type.value for key_type in KeyType)
    raise InvalidRequest("key_type", f"must be one of {allowed}")


def _sans(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_SANS:
        raise InvalidRequest("sans", f"must be a list of at most {MAX_SANS} names")
    return tuple(
        normalize_subject_alt_name(name, f"sans[{index}]") for index, name in enumerate(value)
    )


def _refuse_unknown(body: Mapping[str, Any], allowed: frozenset[str], prefix: str = "") -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequest(
            prefix + unknown[0], f"unknown field; allowed: {', '.join(sorted(allowed))}"
        )


def _aws_iot_options(values: Mapping[str, Any]) -> AwsIotOptions | None:
    """Device issuance's `{"register": bool, "thing": bool}`; a thing needs `register`."""
    value = values.get("aws_iot")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequest("aws_iot", 'must be an object such as {"register": true}')
    _refuse_unknown(value, AWS_IOT_DEVICE_FIELDS, "aws_iot.")
    register = bool(_boolean(value, "register", "aws_iot.register"))
    thing = bool(_boolean(value, "thing", "aws_iot.thing"))
    if thing and not register:
        raise InvalidRequest("aws_iot.thing", "needs aws_iot.register: a thing's certificate")
    size = values.get("count") or len(values.get("csrs") or ()) or 1
    if register and isinstance(size, int) and size > MAX_AWS_IOT_BULK:
        raise InvalidRequest(
            "aws_iot.register",
            f"at most {MAX_AWS_IOT_BULK} devices a request are registered with AWS IoT "
            "(four IoT calls each, within API Gateway's 29 s)",
        )
    return AwsIotOptions(register=register, thing=thing)


def parse_registration_code(body: dict[str, Any]) -> str:
    """AWS IoT's registration code (64 hex digits today): letters and digits, 1-64 of them, as
    it becomes the verification certificate's CN."""
    _refuse_unknown(body, VERIFICATION_FIELDS)
    code = body.get("registration_code")
    if code is None:
        raise InvalidRequest("registration_code", "is required")
    if (
        not isinstance(code, str)
        or not 1 <= len(code) <= 64
        or not (code.isascii() and code.isalnum())
    ):
        raise InvalidRequest(
            "registration_code",
            "must be 1-64 letters and digits, as `aws iot get-registration-code` returns",
        )
    return code


def parse_iot_registration(body: dict[str, Any]) -> IotCaRequest:
    """POST .../aws-iot/register: `mode` DEFAULT (default) or SNI_ONLY; `provisioning` jitp
    (default) or none; `auto_registration` (default true) must be true for jitp."""
    _refuse_unknown(body, IOT_REGISTRATION_FIELDS)
    values = {name: value for name, value in body.items() if value is not None}
    mode = values.get("mode", DEFAULT_MODE)
    if mode not in (DEFAULT_MODE, SNI_ONLY_MODE):
        raise InvalidRequest("mode", f"must be {DEFAULT_MODE} or {SNI_ONLY_MODE}")
    provisioning = values.get("provisioning", JITP)
    if provisioning not in (JITP, "none"):
        raise InvalidRequest("provisioning", f"must be {JITP} or none")
    auto_registration = _boolean(values, "auto_registration")
    auto_registration = True if auto_registration is None else auto_registration
    if provisioning == JITP and not auto_registration:
        raise InvalidRequest(
            "auto_registration", "must be true with provisioning jitp: AWS IoT provisions a "
            "device just in time only when its CA allows auto-registration",
        )  # fmt: skip
    return IotCaRequest(mode, auto_registration, provisioning)

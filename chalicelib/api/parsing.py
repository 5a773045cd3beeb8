"""Turns request bodies and query strings into validated service inputs (400 naming the field)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.model import CertType, IssueRequest, KeyType, SubjectDetails
from chalicelib.names import (
    MAX_COMMON_NAME_LENGTH,
    decode_certificate_name,
    normalize_fqdn,
    normalize_subject_alt_name,
)

MAX_BODY_BYTES = 64 * 1024
MAX_VALIDITY_DAYS = 36500
MAX_PATH_LENGTH = 8
MAX_SANS = 100
MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100

_DIGITS = re.compile(r"[0-9]{1,9}")
_SUBJECT_FIELDS = {"country", "state", "organization"}
_COMMON_FIELDS = _SUBJECT_FIELDS | {"validity_days", "key_type"}
ALLOWED_FIELDS: dict[CertType, frozenset[str]] = {
    CertType.ROOT: frozenset(_COMMON_FIELDS | {"fqdn"}),
    CertType.INTERMEDIATE: frozenset(_COMMON_FIELDS | {"fqdn", "parent_fqdn", "path_length"}),
    CertType.SERVER: frozenset(_COMMON_FIELDS | {"fqdn", "parent_fqdn", "sans"}),
    CertType.CLIENT: frozenset(_COMMON_FIELDS | {"parent_fqdn"}),
}
REQUIRED_FIELD = {
    CertType.ROOT: "fqdn",
    CertType.INTERMEDIATE: "fqdn",
    CertType.SERVER: "fqdn",
    CertType.CLIENT: "parent_fqdn",
}
_TEXT_LIMITS = {"state": 128, "organization": 64}


def read_json_object(raw_body: bytes | None) -> dict[str, Any]:
    body = raw_body or b""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"body: {len(body)} bytes is over the limit of {MAX_BODY_BYTES}")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidRequest("body", "must be a JSON object") from err
    if not isinstance(parsed, dict):
        raise InvalidRequest("body", "must be a JSON object")
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
    )


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
    try:
        return KeyType(value)
    except ValueError as err:
        allowed = ", ".join(key_type.value for key_type in KeyType)
        raise InvalidRequest("key_type", f"must be one of {allowed}") from err


def _sans(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_SANS:
        raise InvalidRequest("sans", f"must be a list of at most {MAX_SANS} names")
    return tuple(
        normalize_subject_alt_name(name, f"sans[{index}]") for index, name in enumerate(value)
    )


def parse_list_query(
    params: Mapping[str, str] | None,
) -> tuple[str | None, int, str | None]:
    """(parent FQDN or None for roots, limit, next_token) from the query string."""
    query = dict(params or {})
    unknown = sorted(set(query) - {"parent", "limit", "next_token"})
    if unknown:
        raise InvalidRequest(
            unknown[0], "unknown query parameter; allowed: limit, next_token, parent"
        )
    parent = decode_certificate_name(query["parent"], "parent") if "parent" in query else None
    raw_limit = query.get("limit", str(DEFAULT_LIST_LIMIT))
    if not _DIGITS.fullmatch(raw_limit) or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
        raise InvalidRequest("limit", f"must be a whole number from 1 to {MAX_LIST_LIMIT}")
    next_token = query.get("next_token") or None
    return parent, int(raw_limit), next_token

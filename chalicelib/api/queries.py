"""Query strings and the small bodies of the non-issuing routes (400 naming the field)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib.api.fields import BUNDLE, REVOKE, validate_body
from chalicelib.bundles import BUNDLE_FORMATS
from chalicelib.errors import InvalidRequest
from chalicelib.model import STATUS_ACTIVE, STATUS_REVOKED
from chalicelib.names import decode_certificate_name

MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
MAX_EXPIRY_DAYS = 36500
PASSWORD_HEADER = "X-Bundle-Password"  # noqa: S105 - a header name, not a password
_DIGITS = re.compile(r"[0-9]{1,9}")
_SERIAL = re.compile(r"[0-9a-fA-F]{1,40}")


def _only(query: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise InvalidRequest(unknown[0], f"unknown {what}; allowed: {', '.join(sorted(allowed))}")


def _whole_number(raw: str, field: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest(field, f"must be a whole number from {low} to {high}")
    return int(raw)


@dataclass(frozen=True)
class ListQuery:
    parent: str | None
    limit: int
    next_token: str | None
    expiring_within_days: int | None
    status: str | None


def parse_list_query(params: Mapping[str, str] | None) -> ListQuery:
    query = dict(params or {})
    _only(query, {"parent", "limit", "next_token", "expiring_within_days", "status"}, "parameter")
    status = query.get("status")
    if status is not None and status not in (STATUS_ACTIVE, STATUS_REVOKED):
        raise InvalidRequest("status", f"must be {STATUS_ACTIVE} or {STATUS_REVOKED}")
    expiring = query.get("expiring_within_days")
    return ListQuery(
        parent=decode_certificate_name(query["parent"], "parent") if "parent" in query else None,
        limit=_whole_number(
            query.get("limit", str(DEFAULT_LIST_LIMIT)), "limit", 1, MAX_LIST_LIMIT
        ),
        next_token=query.get("next_token") or None,
        expiring_within_days=(
            None
            if expiring is None
            else _whole_number(expiring, "expiring_within_days", 0, MAX_EXPIRY_DAYS)
        ),
        status=status,
    )


DEFAULT_EXPIRING_DAYS = 30


@dataclass(frozen=True)
class ExpiringQuery:
    within_days: int
    limit: int
    next_token: str | None


def parse_expiring_query(params: Mapping[str, str] | None) -> ExpiringQuery:
    query = dict(params or {})
    _only(query, {"within_days", "limit", "next_token"}, "parameter")
    return ExpiringQuery(
        within_days=_whole_number(
            query.get("within_days", str(DEFAULT_EXPIRING_DAYS)), "within_days", 0,
            MAX_EXPIRY_DAYS,
        ),
        limit=_whole_number(
            query.get("limit", str(DEFAULT_LIST_LIMIT)), "limit", 1, MAX_LIST_LIMIT
        ),
        next_token=query.get("next_token") or None,
    )  # fmt: skip


def parse_delete_query(params: Mapping[str, str] | None) -> bool:
    """DELETE's `cascade` (false unless `true`): whether a CA goes with what it issued."""
    query = dict(params or {})
    _only(query, {"cascade"}, "parameter")
    raw = query.get("cascade", "false")
    if raw not in ("true", "false"):
        raise InvalidRequest("cascade", "must be true or false")
    return raw == "true"


@dataclass(frozen=True)
class HistoryQuery:
    limit: int
    next_token: str | None


def parse_history_query(params: Mapping[str, str] | None) -> HistoryQuery:
    query = dict(params or {})
    _only(query, {"limit", "next_token"}, "parameter")
    return HistoryQuery(
        limit=_whole_number(
            query.get("limit", str(DEFAULT_LIST_LIMIT)), "limit", 1, MAX_LIST_LIMIT
        ),
        next_token=query.get("next_token") or None,
    )


def parse_serial(value: object, field: str = "serial") -> str:
    """A certificate serial number in hex (as the API shows it), in the API's spelling."""
    if not isinstance(value, str) or not _SERIAL.fullmatch(value):
        raise InvalidRequest(field, "must be a certificate serial number: 1-40 hex digits")
    return format(int(value, 16), "x")


def parse_generation_query(
    params: Mapping[str, str] | None, also: frozenset[str] = frozenset()
) -> str | None:
    """`?serial=` (one generation of the certificate; the current one without it), and the
    route's other parameters (`also`), which its own parser reads."""
    query = dict(params or {})
    _only(query, {"serial", *also}, "parameter")
    return parse_serial(query["serial"]) if "serial" in query else None


def parse_no_parameters(params: Mapping[str, str] | None) -> None:
    _only(dict(params or {}), set(), "parameter")


def parse_revocation_reason(body: Mapping[str, Any]) -> str:
    return str(validate_body(REVOKE, body).get("reason", "unspecified"))


def parse_crl_format(params: Mapping[str, str] | None) -> str:
    query = dict(params or {})
    _only(query, {"format"}, "parameter")
    crl_format = query.get("format", "der")
    if crl_format not in ("der", "pem"):
        raise InvalidRequest("format", "must be der or pem")
    return crl_format


def parse_bundle_get(
    params: Mapping[str, str] | None, headers: Mapping[str, str]
) -> tuple[str, str | None]:
    """(format, password) of GET .../bundle: a password only ever in a header."""
    query = dict(params or {})
    if "password" in query:
        raise InvalidRequest(
            "password", f"never in the URL: send it in the {PASSWORD_HEADER} header or POST body"
        )
    _only(query, {"format", "serial"}, "parameter")
    password = _utf8_header(headers.get(PASSWORD_HEADER.lower()))
    return _with_password(_bundle_format(query.get("format", "pem")), password)


def _utf8_header(value: str | None) -> str | None:
    """A header value sent as UTF-8 bytes. HTTP servers hand header bytes on as Latin-1 text (the
    local server does), so a value whose Latin-1 bytes are valid UTF-8 is read as UTF-8; any
    other value (Latin-1 bytes that are not UTF-8, or text already decoded) is kept as it is."""
    if value is None:
        return None
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def parse_bundle_post(body: Mapping[str, Any]) -> tuple[str, str | None]:
    values = validate_body(BUNDLE, body)
    return _with_password(values.get("format", "pkcs12"), values.get("password"))


def _with_password(bundle_format: str, password: str | None) -> tuple[str, str | None]:
    if bundle_format == "pkcs12" and not password:
        raise InvalidRequest(
            "password", "is required for pkcs12 (in the POST body or the X-Bundle-Password header)"
        )
    return bundle_format, password


def _bundle_format(value: object) -> str:
    if value not in BUNDLE_FORMATS:
        raise InvalidRequest("format", f"must be one of {', '.join(BUNDLE_FORMATS)}")
    return str(value)

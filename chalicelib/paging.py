"""The opaque `next_token` of list responses: the parent and the last FQDN returned."""

from __future__ import annotations

import base64
import binascii
import json

from chalicelib.errors import InvalidRequest
from chalicelib.names import normalize_fqdn

_INVALID = "is not a token returned by GET /certificates"


def encode_page_token(parent_key: str, last_fqdn: str) -> str:
    payload = json.dumps({"p": parent_key, "a": last_fqdn}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_page_token(token: str, parent_key: str) -> str:
    """The FQDN to continue after; InvalidRequest for a forged token or one of another parent."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as err:
        raise InvalidRequest("next_token", _INVALID) from err
    if not isinstance(payload, dict) or not isinstance(payload.get("a"), str):
        raise InvalidRequest("next_token", _INVALID)
    if payload.get("p") != parent_key:
        raise InvalidRequest("next_token", f"{_INVALID} for this parent")
    try:
        return normalize_fqdn(payload["a"], "next_token")
    except InvalidRequest as err:
        raise InvalidRequest("next_token", _INVALID) from err

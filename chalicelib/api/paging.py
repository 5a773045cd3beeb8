"""The opaque `next_token` of paged responses: what the page was of, and where the next starts.

A listing's token holds the parent and the last FQDN returned; a history's, the certificate and
the generation the next page starts at. A token is refused (400) when it was not made by this
API for the same listing.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from chalicelib.errors import InvalidRequest
from chalicelib.model import ExpiryCursor
from chalicelib.names import normalize_fqdn

_INVALID = "is not a token returned by this API"


def _encode(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as err:
        raise InvalidRequest("next_token", _INVALID) from err
    if not isinstance(payload, dict):
        raise InvalidRequest("next_token", _INVALID)
    return payload


def encode_page_token(parent_key: str, last_fqdn: str) -> str:
    return _encode({"p": parent_key, "a": last_fqdn})


def decode_page_token(token: str, parent_key: str) -> str:
    """The FQDN to continue after; 400 for a forged token or one of another parent."""
    payload = _decode(token)
    if not isinstance(payload.get("a"), str):
        raise InvalidRequest("next_token", _INVALID)
    if payload.get("p") != parent_key:
        raise InvalidRequest("next_token", f"{_INVALID} for this parent")
    try:
        return normalize_fqdn(payload["a"], "next_token")
    except InvalidRequest as err:
        raise InvalidRequest("next_token", _INVALID) from err


def encode_history_token(fqdn: str, generation: int) -> str:
    return _encode({"h": fqdn, "g": generation})


def decode_history_token(token: str, fqdn: str) -> int:
    """The generation the next page of `fqdn`'s history starts at."""
    payload = _decode(token)
    generation = payload.get("g")
    if payload.get("h") != fqdn or not isinstance(generation, int) or isinstance(generation, bool):
        raise InvalidRequest("next_token", f"{_INVALID} for the history of {fqdn}")
    if generation < 1:
        raise InvalidRequest("next_token", _INVALID)
    return generation


def encode_expiry_token(cursor: ExpiryCursor) -> str:
    return _encode({"x": [cursor.not_after, cursor.fqdn, cursor.parent_fqdn]})


def decode_expiry_token(token: str) -> ExpiryCursor:
    """Where the next page of the expiry listing starts; 400 for any other token."""
    position = _decode(token).get("x")
    if not (isinstance(position, list) and len(position) == 3
            and all(isinstance(part, str) for part in position)):  # fmt: skip
        raise InvalidRequest("next_token", f"{_INVALID} for the expiring certificates")
    return ExpiryCursor(*position)

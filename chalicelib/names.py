"""Names: FQDN rules, the base64url form of an FQDN used in URLs, and device names."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import uuid

from chalicelib.errors import InvalidRequest

MAX_FQDN_LENGTH = 253
MAX_COMMON_NAME_LENGTH = 64
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")
"""A label that URL parsers and inet_aton(3) read as a number: a name ending in one is taken
for an IPv4 address (`127.1`, `0x7f.1`, `1.2.3.4`), not looked up in DNS."""
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
FQDN_RULE = (
    "must be a lowercase DNS name: labels of 1-63 letters, digits or hyphens that neither "
    "start nor end with a hyphen, at least two labels, the last not a number, at most 253 "
    "characters"
)


def _labels_are_valid(labels: list[str]) -> bool:
    return all(_LABEL.fullmatch(label) for label in labels) and not _NUMBER.fullmatch(labels[-1])


def normalize_fqdn(value: object, field: str) -> str:
    """Return the FQDN in its one stored form (lowercase), or raise naming `field`."""
    if not isinstance(value, str):
        raise InvalidRequest(field, "must be a string")
    if not value.isascii():  # checked before lower(): some non-ASCII letters fold to ASCII
        raise InvalidRequest(field, f"{value!r} {FQDN_RULE}")
    fqdn = value.lower()
    labels = fqdn.split(".")
    if len(fqdn) > MAX_FQDN_LENGTH or len(labels) < 2:
        raise InvalidRequest(field, f"{value!r} {FQDN_RULE}")
    if not _labels_are_valid(labels):
        raise InvalidRequest(field, f"{value!r} {FQDN_RULE}")
    return fqdn


def is_under(fqdn: str, parent_fqdn: str) -> bool:
    """True when `fqdn` lies strictly below `parent_fqdn` in the DNS tree."""
    return fqdn.endswith("." + parent_fqdn)


def proper_suffixes(fqdn: str) -> list[str]:
    """The FQDNs above `fqdn` with at least two labels, longest first."""
    labels = fqdn.split(".")
    return [".".join(labels[index:]) for index in range(1, len(labels) - 1)]


def encode_fqdn(fqdn: str) -> str:
    """The URL-safe base64 form of an FQDN (no padding), as the original design used in URLs."""
    return base64.urlsafe_b64encode(fqdn.encode()).decode().rstrip("=")


def decode_certificate_name(value: str, field: str) -> str:
    """Accept an FQDN plainly (it has a dot) or as URL-safe base64 of it (no dot)."""
    if "." in value:
        return normalize_fqdn(value, field)
    if not _BASE64URL.fullmatch(value):
        raise InvalidRequest(field, f"{value!r} is neither an FQDN nor the URL-safe base64 of one")
    try:
        decoded = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as err:
        raise InvalidRequest(
            field, f"{value!r} is neither an FQDN nor the URL-safe base64 of one"
        ) from err
    return normalize_fqdn(decoded, field)


def random_uuids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs as strings, from one read of the system's random source:
    a bulk names a thousand devices, and `uuid.uuid4()` costs several times as much per id."""
    if count == 1:
        return [str(uuid.uuid4())]
    raw = bytearray(os.urandom(16 * count))
    raw[6::16] = bytes(byte & 0x0F | 0x40 for byte in raw[6::16])  # version 4
    raw[8::16] = bytes(byte & 0x3F | 0x80 for byte in raw[8::16])  # RFC 4122 variant
    digits = raw.hex()
    return [
        f"{digits[at : at + 8]}-{digits[at + 8 : at + 12]}-{digits[at + 12 : at + 16]}-"
        f"{digits[at + 16 : at + 20]}-{digits[at + 20 : at + 32]}"
        for at in range(0, 32 * count, 32)
    ]


def device_fqdn(device_id: str, parent_fqdn: str) -> str:
    return f"{device_id}.{parent_fqdn}"


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def normalize_subject_alt_name(value: object, field: str) -> str:
    """A server SAN: an IP address, or a DNS host name (one label allowed, `*.` prefix allowed)."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest(field, "must be a non-empty string")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            raise InvalidRequest(
                field, f"{value!r}: an IPv6 zone (%...) has no place in a certificate; omit it"
            )
        return str(address)
    name = value.lower() if value.isascii() else ""
    labels = name.split(".")
    if labels[0] == "*" and len(labels) > 2:
        labels = labels[1:]
    if _NUMBER.fullmatch(labels[-1]) and all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidRequest(
            field,
            f"{value!r} ends in a number, so clients read it as an IPv4 address, but it is not "
            "one in standard form: write an IPv4 address as four decimal numbers without "
            "leading zeros (e.g. 127.0.0.1)",
        )
    if not name or len(name) > MAX_FQDN_LENGTH or not _labels_are_valid(labels):
        raise InvalidRequest(
            field,
            f"{value!r} must be an IP address or a DNS name (labels of 1-63 letters, digits or "
            "hyphens, the last not a number; a leading '*.' wildcard is allowed above two "
            "labels)",
        )
    return name

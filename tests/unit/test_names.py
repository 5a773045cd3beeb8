"""Table tests of the name rules (chalicelib.names) and the list token (chalicelib.paging)."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from chalicelib.api.paging import decode_page_token, encode_page_token
from chalicelib.errors import InvalidRequest
from chalicelib.names import (
    decode_certificate_name,
    encode_fqdn,
    is_under,
    normalize_fqdn,
    normalize_subject_alt_name,
    proper_suffixes,
    random_uuids,
)

LABEL_63 = "a" * 63
LABEL_64 = "a" * 64
FQDN_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
FQDN_254 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62])


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_length_fixtures_are_what_their_names_say() -> None:
    assert (len(LABEL_63), len(LABEL_64), len(FQDN_253), len(FQDN_254)) == (63, 64, 253, 254)


# normalize_fqdn ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("Cell1.Devices.Example.Com", "cell1.devices.example.com"),
        ("my-host.example.com", "my-host.example.com"),
        ("a--b.example.com", "a--b.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a.b", "a.b"),
        ("123.example.com", "123.example.com"),
        ("cell1.0xg", "cell1.0xg"),
        (f"{LABEL_63}.com", f"{LABEL_63}.com"),
        (FQDN_253, FQDN_253),
        (FQDN_253.upper(), FQDN_253),
        ("3f2b8c1e-9d4a-4e7b-8c21-5a6f0e9d1b47.cell1.example.com", None),
    ],
)
def test_normalize_fqdn_accepts(value: str, expected: str | None) -> None:
    assert normalize_fqdn(value, "fqdn") == (expected or value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f"{LABEL_64}.com", id="64-char-label"),
        pytest.param(FQDN_254, id="254-chars"),
        pytest.param("-host.example.com", id="leading-hyphen"),
        pytest.param("host-.example.com", id="trailing-hyphen"),
        pytest.param("example.-com", id="tld-leading-hyphen"),
        pytest.param("-.example.com", id="hyphen-only-label"),
        pytest.param("localhost", id="single-label"),
        pytest.param("com", id="single-label-tld"),
        pytest.param("", id="empty"),
        pytest.param("a..example.com", id="double-dot"),
        pytest.param("..", id="dots-only"),
        pytest.param(".example.com", id="leading-dot"),
        pytest.param("example.com.", id="trailing-dot"),
        pytest.param("a/b.example.com", id="slash"),
        pytest.param("../example.com", id="parent-path"),
        pytest.param("a\\b.example.com", id="backslash"),
        pytest.param("a b.example.com", id="space-inside"),
        pytest.param(" example.com", id="leading-space"),
        pytest.param("example.com ", id="trailing-space"),
        pytest.param("a\tb.example.com", id="tab"),
        pytest.param("_dmarc.example.com", id="underscore"),
        pytest.param("*.example.com", id="wildcard"),
        pytest.param("bücher.example.com", id="non-ascii-latin"),
        pytest.param("example.c\u043em", id="non-ascii-cyrillic-o"),
        pytest.param("b\u00fccher.example.com".upper(), id="non-ascii-upper"),
        pytest.param("\u212aelvin.example.com", id="kelvin-sign-folds-to-ascii"),
        pytest.param("example.com\n", id="trailing-newline"),
        pytest.param("a\n.example.com", id="newline-inside"),
        pytest.param("1.2.3.4", id="ipv4-address"),
        pytest.param("cell1.42", id="numeric-last-label"),
        pytest.param("127.1", id="short-ipv4"),
        pytest.param("example.0x1f", id="hex-last-label"),
    ],
)
def test_normalize_fqdn_rejects(value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        normalize_fqdn(value, "parent_fqdn")

    assert raised.value.field == "parent_fqdn"
    assert "at least two labels" in raised.value.rule


@pytest.mark.parametrize("value", [None, 42, 3.5, b"example.com", ["example.com"], {"a": 1}])
def test_normalize_fqdn_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidRequest) as raised:
        normalize_fqdn(value, "fqdn")

    assert raised.value.field == "fqdn"
    assert raised.value.rule == "must be a string"


# is_under / proper_suffixes --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fqdn", "parent", "expected"),
    [
        ("a.example.com", "example.com", True),
        ("a.b.example.com", "example.com", True),
        ("a.b.example.com", "b.example.com", True),
        ("example.com", "example.com", False),
        ("badexample.com", "example.com", False),
        ("example.com", "a.example.com", False),
        ("a.example.org", "example.com", False),
        ("example.com.evil.org", "example.com", False),
    ],
)
def test_is_under(fqdn: str, parent: str, expected: bool) -> None:
    assert is_under(fqdn, parent) is expected


@pytest.mark.parametrize(
    ("fqdn", "expected"),
    [
        ("a.b.example.com", ["b.example.com", "example.com"]),
        ("a.example.com", ["example.com"]),
        ("example.com", []),
        (
            "x.cell1.devices.example.com",
            ["cell1.devices.example.com", "devices.example.com", "example.com"],
        ),
    ],
)
def test_proper_suffixes_longest_first(fqdn: str, expected: list[str]) -> None:
    assert proper_suffixes(fqdn) == expected


# encode_fqdn / decode_certificate_name ---------------------------------------------------


@pytest.mark.parametrize(
    ("fqdn", "padding"),
    [
        ("a.bc", 2),  # 4 bytes -> two '=' dropped
        ("ab.cd", 1),  # 5 bytes -> one '=' dropped
        ("abc.de", 0),  # 6 bytes -> no padding
        ("cell1.devices.example.com", None),
        (FQDN_253, None),
    ],
)
def test_encode_then_decode_round_trips(fqdn: str, padding: int | None) -> None:
    encoded = encode_fqdn(fqdn)
    padded = base64.urlsafe_b64encode(fqdn.encode()).decode()

    assert "=" not in encoded
    assert "." not in encoded
    assert encoded == padded.rstrip("=")
    if padding is not None:
        assert len(padded) - len(encoded) == padding
    assert decode_certificate_name(encoded, "certificate") == fqdn
    assert decode_certificate_name(padded, "certificate") == fqdn


def test_decode_accepts_a_plain_fqdn_and_folds_case() -> None:
    assert decode_certificate_name("Cell1.Example.COM", "certificate") == "cell1.example.com"


def test_decode_folds_case_inside_base64() -> None:
    assert decode_certificate_name(b64("Cell1.Example.COM"), "parent") == "cell1.example.com"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("a", id="one-char-is-not-base64"),
        pytest.param("abcde", id="length-1-mod-4"),
        pytest.param("abc", id="decodes-to-non-ascii-bytes"),
        pytest.param("!!!!", id="no-base64-alphabet"),
        pytest.param("", id="empty"),
        pytest.param(b64(b"\xff\xfe.example.com"), id="binary-bytes"),
    ],
)
def test_decode_rejects_garbage(value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_certificate_name(value, "certificate")

    assert raised.value.field == "certificate"


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "a..example.com",
        "a/b.example.com",
        "../../etc/passwd",
        "ex ample.com",
        "example.com.",
        "bücher.example.com",
        "\u212aelvin.example.com",
        "example.com\n",
        f"{LABEL_64}.com",
    ],
)
def test_decode_rejects_base64_of_an_invalid_name(name: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_certificate_name(b64(name), "parent")

    assert raised.value.field == "parent"


@pytest.mark.parametrize("value", ["a/b.example.com", "a..example.com", "example.com."])
def test_decode_rejects_an_invalid_plain_name(value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_certificate_name(value, "certificate")

    assert raised.value.field == "certificate"


# normalize_subject_alt_name --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.10", "192.0.2.10"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("localhost", "localhost"),
        ("broker", "broker"),
        ("Broker.Example.com", "broker.example.com"),
        ("mqtt.example.com", "mqtt.example.com"),
        ("*.example.com", "*.example.com"),
        ("*.Servers.Example.com", "*.servers.example.com"),
        ("123.example.com", "123.example.com"),
        ("10.example.com", "10.example.com"),
    ],
)
def test_subject_alt_name_accepts(value: str, expected: str) -> None:
    assert normalize_subject_alt_name(value, "sans") == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("*", id="bare-wildcard"),
        pytest.param("*.com", id="wildcard-on-two-labels"),
        pytest.param("a.*.example.com", id="wildcard-not-leftmost"),
        pytest.param("*.*.example.com", id="double-wildcard"),
        pytest.param("*example.com", id="partial-wildcard"),
        pytest.param("", id="empty"),
        pytest.param("bad_name.example.com", id="underscore"),
        pytest.param("ex ample.com", id="space"),
        pytest.param("-broker.example.com", id="leading-hyphen"),
        pytest.param("broker..example.com", id="double-dot"),
        pytest.param("broker.example.com.", id="trailing-dot"),
        pytest.param("bücher.example.com", id="non-ascii"),
        pytest.param("\u212aelvin.example.com", id="kelvin-sign-folds-to-ascii"),
        pytest.param("192.0.2.10/24", id="ip-network"),
        pytest.param(f"{LABEL_64}.example.com", id="64-char-label"),
        pytest.param("broker.example.com\n", id="trailing-newline"),
    ],
)
def test_subject_alt_name_rejects(value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        normalize_subject_alt_name(value, "sans")

    assert raised.value.field == "sans"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("010.0.0.1", id="octal-octet"),
        pytest.param("0x7f.1", id="hex-and-short"),
        pytest.param("127.1", id="short"),
        pytest.param("2130706433", id="one-integer"),
        pytest.param("0x7f000001", id="one-hex-integer"),
        pytest.param("1.2.3.4.5", id="five-numbers"),
        pytest.param("*.10.0.1", id="wildcard-over-numbers"),
        pytest.param("broker.1", id="numeric-last-label"),
    ],
)
def test_subject_alt_name_refuses_names_read_as_ipv4_addresses(value: str) -> None:
    """inet_aton(3) and URL parsers read these as IPv4 addresses: neither a DNS name nor taken
    for an address the service would have to guess."""
    with pytest.raises(InvalidRequest) as raised:
        normalize_subject_alt_name(value, "sans[2]")

    assert raised.value.field == "sans[2]"
    assert "IPv4 address" in raised.value.rule


@pytest.mark.parametrize("value", ["fe80::1%eth0", "fe80::1%1", "FE80::1%25en0"])
def test_subject_alt_name_refuses_an_ipv6_zone(value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        normalize_subject_alt_name(value, "sans[0]")

    assert raised.value.field == "sans[0]"
    assert "zone" in raised.value.rule


@pytest.mark.parametrize("value", [None, 42, b"localhost", ["localhost"]])
def test_subject_alt_name_rejects_non_strings(value: object) -> None:
    with pytest.raises(InvalidRequest) as raised:
        normalize_subject_alt_name(value, "sans")

    assert raised.value.field == "sans"


# paging tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent", "last"),
    [
        ("Root", "example.com"),
        (
            "cell1.devices.example.com",
            "3f2b8c1e-9d4a-4e7b-8c21-5a6f0e9d1b47.cell1.devices.example.com",
        ),
        ("example.com", FQDN_253),
    ],
)
def test_page_token_round_trips(parent: str, last: str) -> None:
    token = encode_page_token(parent, last)

    assert "=" not in token
    assert last not in token  # opaque, not the FQDN in clear
    assert decode_page_token(token, parent) == last


def test_page_token_of_another_parent_is_rejected() -> None:
    token = encode_page_token("cell1.devices.example.com", "a.cell1.devices.example.com")

    with pytest.raises(InvalidRequest) as raised:
        decode_page_token(token, "cell2.devices.example.com")

    assert raised.value.field == "next_token"
    assert "parent" in raised.value.rule


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("", id="empty"),
        pytest.param("a", id="not-base64"),
        pytest.param("!!!!", id="no-base64-alphabet"),
        pytest.param(b64("not json"), id="not-json"),
        pytest.param(b64(b"\xff\xfe\xfd"), id="not-utf8"),
        pytest.param(b64("null"), id="json-null"),
        pytest.param(b64('["Root", "example.com"]'), id="json-list"),
        pytest.param(b64('"example.com"'), id="json-string"),
        pytest.param(b64('{"p": "Root"}'), id="missing-after"),
        pytest.param(b64('{"p": "Root", "a": 5}'), id="after-not-a-string"),
        pytest.param(b64('{"a": "example.com"}'), id="missing-parent"),
        pytest.param(b64('{"p": "Root", "a": null}'), id="after-null"),
        pytest.param(b64("[" * 2000), id="deeply-nested-json"),
    ],
)
def test_garbage_page_tokens_are_rejected(token: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_page_token(token, "Root")

    assert raised.value.field == "next_token"


def test_a_token_with_padding_restored_still_decodes() -> None:
    token = encode_page_token("Root", "ab.cd")
    padded = token + "=" * (-len(token) % 4)

    assert decode_page_token(padded, "Root") == "ab.cd"


def test_page_token_payload_is_the_parent_and_the_last_fqdn() -> None:
    """Tokens outlive the process that issued them (any Lambda may continue a list); pin it."""
    token = encode_page_token("Root", "example.com")
    payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))

    assert payload == {"p": "Root", "a": "example.com"}


@pytest.mark.parametrize("count", [0, 1, 1000])
def test_random_uuids_are_distinct_version_4_uuids_in_canonical_form(count: int) -> None:
    ids = random_uuids(count)

    assert len(ids) == len(set(ids)) == count
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122), value
        assert str(parsed) == value


def test_random_uuids_differ_between_calls() -> None:
    assert set(random_uuids(50)).isdisjoint(random_uuids(50))

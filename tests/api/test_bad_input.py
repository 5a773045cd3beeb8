"""Bad requests: each is a 4xx whose message names the field, and none of them writes anything.

Every case runs on both backends and snapshots everything stored before and after the request
(locally files and inventory rows; on AWS S3 object versions, DynamoDB items and ACM
certificates): a rejected request must leave no certificate, no temp file, no object version, no
inventory item and no ACM import behind. Since none writes, the cases share one hierarchy per
backend (`module_backend`); the bad inputs that need a store of their own are in
test_input_limits.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.names import encode_fqdn
from tests.backends import Backend
from tests.helpers import (
    CELL1,
    CELL2,
    DEVICE_CA_PARENT,
    MAX_BODY_BYTES,
    ROOT,
    SERVER_CA,
    ApiClient,
    assert_rejected,
    create_hierarchy,
)

SERVER_LEAF = f"mqtt.{SERVER_CA}"
"""A server certificate `issued` adds, so that cases can name a non-CA as a parent."""


@pytest.fixture(scope="module")
def issued(module_backend_api: ApiClient) -> dict[str, dict[str, Any]]:
    """The example hierarchy, one server certificate and two devices in cell1, issued once per
    backend for the module: every test here proves its request wrote nothing."""
    issued = create_hierarchy(module_backend_api)
    issued[SERVER_LEAF] = module_backend_api.create("server", fqdn=SERVER_LEAF)
    for _ in range(2):
        device = module_backend_api.create("device", parent_fqdn=CELL1)
        issued[device["fqdn"]] = device
    return issued


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: Any
    status: int
    field: str
    contains: str = ""


def post(kind: str, body: Any, field: str, status: int = 400, contains: str = "") -> Case:
    return Case("POST", f"/certificates/{kind}", body, status, field, contains)


def get(path: str, field: str, status: int = 400, contains: str = "") -> Case:
    return Case("GET", path, None, status, field, contains)


LONG_LABEL = "a" * 64
TOO_LONG_FQDN = ".".join(["a" * 59] * 5)  # 299 characters, every label valid
assert len(TOO_LONG_FQDN) > 253

BAD_FQDNS = {
    "dot-dot-slash": "../x",
    "slash": "a/b.com",
    "space": "has space.com",
    "label-64-chars": f"{LONG_LABEL}.com",
    "single-label": "localhost",
    "300-chars": TOO_LONG_FQDN,
    "non-ascii": "bücher.de",
    "leading-hyphen": "-lead.example.com",
    "trailing-hyphen": "trail-.example.com",
    "empty-label": "a..b.com",
    "trailing-dot": "example.com.",
    "leading-dot": ".example.com",
    "underscore": "exa_mple.com",
    "wildcard": "*.example.com",
    "empty": "",
    "kelvin-sign": "\u212aelvin.org",  # lowercases to an ASCII "k": must be refused first
    "trailing-newline": "example.com\n",
    "ipv4-address": "1.2.3.4",
    "numeric-last-label": "cell1.42",
    "hex-last-label": "example.0x1f",
}

CASES: dict[str, Any] = {
    # Required fields, null counting as absent.
    "root-missing-fqdn": post("root", {}, "fqdn", contains="required"),
    "root-null-fqdn": post("root", {"fqdn": None}, "fqdn", contains="required"),
    "intermediate-missing-fqdn": post("intermediate", {"parent_fqdn": ROOT}, "fqdn"),
    "server-missing-fqdn": post("server", {"parent_fqdn": SERVER_CA}, "fqdn"),
    "device-missing-parent": post("device", {}, "parent_fqdn", contains="required"),
    # Fields a certificate type does not take.
    "unknown-field": post("root", {"fqdn": "new.org", "colour": "blue"}, "colour"),
    "root-with-parent": post("root", {"fqdn": "new.org", "parent_fqdn": ROOT}, "parent_fqdn"),
    "device-with-fqdn": post("device", {"parent_fqdn": CELL1, "fqdn": f"x.{CELL1}"}, "fqdn"),
    "intermediate-with-sans": post(
        "intermediate", {"fqdn": f"ca.{ROOT}", "sans": []}, "sans", contains="unknown"
    ),
    "server-with-path-length": post(
        "server", {"fqdn": f"www.{SERVER_CA}", "path_length": 0}, "path_length"
    ),
    # Wrong JSON types.
    "fqdn-number": post("root", {"fqdn": 42}, "fqdn"),
    "fqdn-list": post("server", {"fqdn": [f"www.{SERVER_CA}"]}, "fqdn"),
    "parent-fqdn-number": post("device", {"parent_fqdn": 1}, "parent_fqdn"),
    "validity-string": post("root", {"fqdn": "new.org", "validity_days": "30"}, "validity_days"),
    "validity-true": post("root", {"fqdn": "new.org", "validity_days": True}, "validity_days"),
    "validity-float": post("root", {"fqdn": "new.org", "validity_days": 30.5}, "validity_days"),
    "sans-string": post("server", {"fqdn": f"www.{SERVER_CA}", "sans": "a.example.com"}, "sans"),
    "sans-bad-entry": post(
        "server", {"fqdn": f"www.{SERVER_CA}", "sans": ["ok.example.com", "bad name"]}, "sans[1]"
    ),
    **{
        f"sans-{name}": post(
            "server", {"fqdn": f"www.{SERVER_CA}", "sans": ["localhost", value]}, "sans[1]"
        )
        for name, value in {
            "ipv4-octal": "010.0.0.1",
            "ipv4-hex": "0x7f.1",
            "ipv4-short": "127.1",
            "ipv4-integer": "2130706433",
            "ipv6-zone": "fe80::1%eth0",
        }.items()
    },
    "sans-number-entry": post("server", {"fqdn": f"www.{SERVER_CA}", "sans": [7]}, "sans[0]"),
    "sans-non-ascii-entry": post(
        "server", {"fqdn": f"www.{SERVER_CA}", "sans": ["\u212a.example.com"]}, "sans[0]"
    ),
    "path-length-float": post(
        "intermediate", {"fqdn": f"ca.{ROOT}", "path_length": 1.0}, "path_length"
    ),
    "path-length-negative": post(
        "intermediate", {"fqdn": f"ca.{ROOT}", "path_length": -1}, "path_length"
    ),
    "path-length-above-max": post(
        "intermediate", {"fqdn": f"ca.{ROOT}", "path_length": 9}, "path_length"
    ),
    "country-number": post("root", {"fqdn": "new.org", "country": 49}, "country"),
    # FQDN rules, through every field that takes an FQDN.
    **{
        f"root-fqdn-{name}": post("root", {"fqdn": value}, "fqdn")
        for name, value in BAD_FQDNS.items()
    },
    "intermediate-fqdn-dot-dot": post(
        "intermediate", {"fqdn": "../x", "parent_fqdn": ROOT}, "fqdn"
    ),
    "server-fqdn-slash": post("server", {"fqdn": f"a/b.{SERVER_CA}"}, "fqdn"),
    "device-parent-dot-dot": post("device", {"parent_fqdn": "../certificates"}, "parent_fqdn"),
    "server-parent-space": post(
        "server", {"fqdn": f"www.{SERVER_CA}", "parent_fqdn": "servers example.com"}, "parent_fqdn"
    ),
    "root-fqdn-over-common-name-limit": post(
        "root", {"fqdn": f"{'a' * 53}.example.com"}, "fqdn", contains="64"
    ),
    "server-fqdn-over-common-name-limit": post(
        "server", {"fqdn": f"{'a' * 50}.{SERVER_CA}"}, "fqdn", contains="64"
    ),
    # Parents.
    "server-not-under-parent": post(
        "server", {"fqdn": "mqtt.other.org", "parent_fqdn": SERVER_CA}, "fqdn", contains=SERVER_CA
    ),
    "server-suffix-but-not-subdomain": post(
        "server", {"fqdn": "mqtt.evilexample.com", "parent_fqdn": ROOT}, "fqdn"
    ),
    "intermediate-equal-to-parent": post(
        "intermediate", {"fqdn": CELL1, "parent_fqdn": CELL1}, "fqdn"
    ),
    "intermediate-above-parent": post(
        "intermediate", {"fqdn": DEVICE_CA_PARENT, "parent_fqdn": CELL1}, "fqdn"
    ),
    "server-unknown-parent": post(
        "server",
        {"fqdn": f"mqtt.nowhere.{ROOT}", "parent_fqdn": f"nowhere.{ROOT}"},
        "parent_fqdn",
        status=404,
    ),
    "device-unknown-parent": post(
        "device", {"parent_fqdn": f"cell9.{DEVICE_CA_PARENT}"}, "parent_fqdn", status=404
    ),
    "intermediate-no-ca-above": post(
        "intermediate", {"fqdn": "ca.unrelated.net"}, "parent_fqdn", status=404
    ),
    "server-no-ca-above": post("server", {"fqdn": "www.unrelated.net"}, "parent_fqdn", status=404),
    "device-parent-is-server": post(
        "device", {"parent_fqdn": SERVER_LEAF}, "parent_fqdn", contains="not a CA"
    ),
    "intermediate-parent-is-server": post(
        "intermediate",
        {"fqdn": f"ca.{SERVER_LEAF}", "parent_fqdn": SERVER_LEAF},
        "parent_fqdn",
        contains="not a CA",
    ),
    "intermediate-parent-is-device-ca-with-path-length-0": post(
        "intermediate", {"fqdn": f"sub.{CELL1}"}, "parent_fqdn", contains="path_length 0"
    ),
    "intermediate-under-path-length-0": post(
        "intermediate",
        {"fqdn": f"sub.{SERVER_CA}", "parent_fqdn": SERVER_CA},
        "parent_fqdn",
        contains="path_length 0",
    ),
    "intermediate-path-length-over-parent": post(
        "intermediate",
        {"fqdn": f"cell3.{DEVICE_CA_PARENT}", "path_length": 1},
        "path_length",
        contains="at most 0",
    ),
    # Subject attributes.
    "country-three-letters": post("root", {"fqdn": "new.org", "country": "DEU"}, "country"),
    "country-digit": post("root", {"fqdn": "new.org", "country": "1A"}, "country"),
    "country-empty": post("root", {"fqdn": "new.org", "country": ""}, "country"),
    "state-too-long": post("root", {"fqdn": "new.org", "state": "s" * 129}, "state"),
    "state-empty": post("root", {"fqdn": "new.org", "state": ""}, "state"),
    "organization-too-long": post(
        "root", {"fqdn": "new.org", "organization": "o" * 65}, "organization"
    ),
    "organization-control-character": post(
        "root", {"fqdn": "new.org", "organization": "Acme\nInc"}, "organization"
    ),
    # Validity and keys.
    "validity-zero": post("device", {"parent_fqdn": CELL1, "validity_days": 0}, "validity_days"),
    "validity-negative": post(
        "device", {"parent_fqdn": CELL1, "validity_days": -5}, "validity_days"
    ),
    "root-validity-over-100-years": post(
        "root", {"fqdn": "new.org", "validity_days": 36501}, "validity_days", contains="36500"
    ),
    "key-type-unknown": post("root", {"fqdn": "new.org", "key_type": "DSA_1024"}, "key_type"),
    "key-type-lowercase": post("root", {"fqdn": "new.org", "key_type": "ec_p256"}, "key_type"),
    "key-type-number": post("device", {"parent_fqdn": CELL1, "key_type": 256}, "key_type"),
    # Bodies.
    "body-not-json": post("root", "fqdn=new.org", "body"),
    "body-truncated-json": post("root", '{"fqdn": "new.org"', "body"),
    "body-list": post("root", [{"fqdn": "new.org"}], "body"),
    "body-null": post("root", "null", "body"),
    "body-string": post("root", '"new.org"', "body"),
    "body-empty": post("root", "", "body"),
    "body-invalid-utf8": post("root", b'{"fqdn": "\xff.org"}', "body"),
    "body-duplicate-key": post(
        "root", '{"fqdn": "new.org", "fqdn": "other.org"}', "fqdn", contains="more than once"
    ),
    "renew-duplicate-key": post(
        f"{SERVER_LEAF}/renew", '{"reuse_key": true, "reuse_key": false}', "reuse_key"
    ),
    "revoke-duplicate-key": post(
        f"{SERVER_LEAF}/revoke", '{"reason": "keyCompromise", "reason": "unspecified"}', "reason"
    ),
    "body-over-64-kib": post(
        "root", {"fqdn": "new.org", "organization": "o" * MAX_BODY_BYTES}, "body", status=413
    ),
    "body-over-64-kib-not-json": post("server", b"x" * (MAX_BODY_BYTES + 1), "body", status=413),
    # The device route takes bulk CSRs: its limit is 1 MiB.
    "device-body-over-1-mib": post("device", b"x" * (1024 * 1024 + 1), "body", status=413),
    # GET /certificates query strings.
    "list-parent-bad-base64": get("/certificates?parent=@@@", "parent"),
    "list-parent-base64-of-single-label": get(
        f"/certificates?parent={encode_fqdn('localhost')}", "parent"
    ),
    "list-parent-base64-of-path": get(f"/certificates?parent={encode_fqdn('../x')}", "parent"),
    "list-parent-base64-with-junk": get(f"/certificates?parent={encode_fqdn(ROOT)}!!", "parent"),
    "list-parent-empty": get("/certificates?parent=", "parent"),
    "list-parent-unknown": get(f"/certificates?parent=nowhere.{ROOT}", "parent", status=404),
    "list-limit-zero": get("/certificates?limit=0", "limit"),
    "list-limit-1001": get("/certificates?limit=1001", "limit", contains="1000"),
    "list-limit-abc": get("/certificates?limit=abc", "limit"),
    "list-limit-negative": get("/certificates?limit=-1", "limit"),
    "list-limit-fraction": get("/certificates?limit=1.5", "limit"),
    "list-limit-empty": get("/certificates?limit=", "limit"),
    "list-limit-superscript-digit": get("/certificates?limit=%C2%B2", "limit"),
    "list-limit-arabic-indic-digits": get("/certificates?limit=%D9%A1%D9%A0", "limit"),
    "list-unknown-parameter": get(f"/certificates?parnet={ROOT}", "parnet"),
    "list-next-token-garbage": get("/certificates?next_token=garbage!!", "next_token"),
    "list-next-token-not-json": get(
        f"/certificates?next_token={encode_fqdn('not json')}", "next_token"
    ),
    "list-next-token-deeply-nested-json": get(
        f"/certificates?next_token={encode_fqdn('[' * 5000)}", "next_token"
    ),
    "list-next-token-json-list": get(
        f"/certificates?next_token={encode_fqdn('[1]')}", "next_token"
    ),
    # GET /certificates/{certificate}.
    "get-bad-base64": get("/certificates/@@@", "certificate"),
    "get-base64-of-single-label": get(f"/certificates/{encode_fqdn('localhost')}", "certificate"),
    "get-base64-with-junk": get(f"/certificates/{encode_fqdn(ROOT)}!!", "certificate"),
    "get-unknown": get(f"/certificates/unknown.{ROOT}", "certificate", status=404),
    "get-unknown-base64": get(
        f"/certificates/{encode_fqdn(f'unknown.{ROOT}')}", "certificate", status=404
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
@pytest.mark.usefixtures("issued")
def test_bad_request_is_rejected_and_writes_nothing(
    module_backend_api: ApiClient, module_backend: Backend, case: Case
) -> None:
    assert_rejected(
        module_backend_api,
        module_backend,
        case.method,
        case.path,
        case.body,
        status=case.status,
        field=case.field,
        contains=case.contains,
    )


def _whole_days_left(not_after: str, moment: datetime) -> int:
    limit = datetime.fromisoformat(not_after.replace("Z", "+00:00"))
    return (limit - moment.replace(microsecond=0)) // timedelta(days=1)


@pytest.mark.parametrize(
    ("issuer", "kind", "body"),
    [
        (CELL1, "device", {"parent_fqdn": CELL1}),
        (SERVER_CA, "server", {"fqdn": f"www.{SERVER_CA}"}),
        (ROOT, "intermediate", {"fqdn": f"ca.{ROOT}", "parent_fqdn": ROOT}),
    ],
)
def test_validity_beyond_the_issuer_names_the_maximum(
    module_backend_api: ApiClient,
    module_backend: Backend,
    issued: dict[str, dict[str, Any]],
    issuer: str,
    kind: str,
    body: dict[str, Any],
) -> None:
    not_after = issued[issuer]["not_after"]
    before = datetime.now(UTC)
    message = assert_rejected(
        module_backend_api,
        module_backend,
        "POST",
        f"/certificates/{kind}",
        {**body, "validity_days": _whole_days_left(not_after, before) + 1},
        field="validity_days",
        contains=issuer,
    )
    after = datetime.now(UTC)
    stated = re.search(r"at most (\d+)", message)
    assert stated is not None, message
    # The service computed the maximum at some second between `before` and `after`.
    possible = {_whole_days_left(not_after, before), _whole_days_left(not_after, after)}
    assert int(stated.group(1)) in possible


@pytest.mark.usefixtures("issued")
def test_next_token_of_another_parent_is_rejected(
    module_backend_api: ApiClient, module_backend: Backend
) -> None:
    first_page = module_backend_api.get(f"/certificates?parent={CELL1}&limit=1")
    assert first_page.status_code == 200, first_page.body
    token = first_page.body["next_token"]
    assert token is not None
    for other_parent in (f"parent={CELL2}&", f"parent={DEVICE_CA_PARENT}&", ""):
        assert_rejected(
            module_backend_api,
            module_backend,
            "GET",
            f"/certificates?{other_parent}next_token={token}",
            field="next_token",
            contains="this parent",
        )
    follow = module_backend_api.get(f"/certificates?parent={CELL1}&limit=1&next_token={token}")
    assert follow.status_code == 200, follow.body
    assert len(follow.body["items"]) == 1

"""One declaration per request field (chalicelib/api/fields.py), and everything that must agree
with it: the OpenAPI request schemas, the CLI's options and the portal's forms. Each test fails
when a surface lacks a declared field, or offers one the declaration lacks."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from chalicelib.api.fields import (
    BUNDLE,
    BY_NAME,
    DEVICE,
    FIELDS,
    INTERMEDIATE,
    IOT_REGISTRATION,
    IOT_VERIFICATION,
    RENEW,
    REQUESTS,
    REVOKE,
    ROOT,
    SERVER,
    fields_of,
    validate_body,
)
from chalicelib.api.spec import openapi_document
from chalicelib.errors import InvalidRequest
from iotcert.cli import build_parser
from iotcert.parsers import CommandParser

PORTAL_JS = Path(__file__).resolve().parents[2] / "chalicelib" / "portal" / "portal.js"
PATH_AND_QUERY = {"fqdn", "serial"}
"""Options of the CLI that go into the URL (the certificate's name, `?serial=`), not a body."""
CLI_COMMAND = {
    ROOT: ("create", "root"),
    INTERMEDIATE: ("create", "intermediate"),
    SERVER: ("create", "server"),
    DEVICE: ("create", "device"),
    RENEW: ("renew",),
    REVOKE: ("revoke",),
    BUNDLE: ("bundle",),
    IOT_VERIFICATION: ("aws-iot", "verification-certificate"),
    IOT_REGISTRATION: ("aws-iot", "register"),
}


def test_every_request_body_is_declared_and_every_field_belongs_to_one() -> None:
    assert set(CLI_COMMAND) == set(REQUESTS)
    assert all(field.requests <= set(REQUESTS) for field in FIELDS)
    assert all(field.required_in <= field.requests for field in FIELDS)
    assert len(BY_NAME) == len(FIELDS)  # each name once


def test_the_openapi_request_schemas_are_the_declarations() -> None:
    schemas = openapi_document()["components"]["schemas"]
    for request, name in REQUESTS.items():
        declared = {field.name: field for field in fields_of(request)}
        schema = schemas[name]
        assert set(schema["properties"]) == set(declared), name
        for field_name, field in declared.items():
            assert schema["properties"][field_name]["description"] == field.description
        assert schema["required"] == [n for n in declared if request in declared[n].required_in]


def _command(path: tuple[str, ...]) -> CommandParser:
    parser = build_parser()
    for name in path:
        [subparsers] = [
            action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        ]
        parser = subparsers.choices[name]
    assert isinstance(parser, CommandParser)
    return parser


@pytest.mark.parametrize("request_name", sorted(CLI_COMMAND))
def test_the_cli_offers_exactly_the_declared_fields(request_name: str) -> None:
    flags = _command(CLI_COMMAND[request_name]).flags
    body = {field.name for field in fields_of(request_name)}
    offered = {
        flag
        for name, flag in flags.items()
        if name in body or (name in BY_NAME and name not in PATH_AND_QUERY)
    }
    declared = {field.cli for field in fields_of(request_name)}
    assert offered == declared, request_name
    for field in fields_of(request_name):
        assert field.cli is not None, field.name
        if field.name in flags:  # csrs travel as repeated --csr
            assert flags[field.name] == field.cli, field.name


def _portal_forms() -> dict[str, set[str]]:
    """The fields of the portal's create forms (KINDS), its revoke form and PKCS#12 form."""
    source = PORTAL_JS.read_text()
    forms = {
        kind: set(re.findall(r"'(\w+)'", fields))
        for kind, fields in re.findall(r"^  (\w+): \{ title: [^,]+, fields: \[([^\]]*)\]", source,
                                       flags=re.MULTILINE)
    }  # fmt: skip
    forms[REVOKE] = set(re.findall(r"h\('select', \{ id: 'revoke-reason', name: '(\w+)'", source))
    pkcs12 = source[source.index("id: 'pkcs12-form'") : source.index("id: 'revoke-form'")]
    forms[BUNDLE] = set(re.findall(r"name: '(\w+)'", pkcs12)) | set(
        re.findall(r"body: \{ (format): 'pkcs12'", pkcs12)
    )
    return forms


def test_the_portal_forms_offer_exactly_the_fields_declared_for_them() -> None:
    forms = _portal_forms()
    assert set(forms) == {ROOT, INTERMEDIATE, SERVER, DEVICE, REVOKE, BUNDLE}
    for form, offered in forms.items():
        declared = {field.name for field in FIELDS if form in field.portal}
        assert offered == declared, form
    labelled = set(re.findall(r"^  (\w+): \{ label:", PORTAL_JS.read_text(), flags=re.MULTILINE))
    assert labelled == forms[ROOT] | forms[INTERMEDIATE] | forms[SERVER] | forms[DEVICE]


@pytest.mark.parametrize(
    ("request_name", "body", "field", "rule"),
    [
        (DEVICE, {}, "parent_fqdn", "is required"),
        (DEVICE, {"parent_fqdn": "cell.example.com", "colour": "red"}, "colour", "unknown field"),
        (ROOT, {"fqdn": "a.example", "validity_days": 0}, "validity_days", "from 1 to 36500"),
        (ROOT, {"fqdn": "a.example", "validity_days": True}, "validity_days", "whole number"),
        (ROOT, {"fqdn": "a.example", "key_type": "DSA"}, "key_type", "must be one of"),
        (ROOT, {"fqdn": "a.example", "country": "Deutschland"}, "country", "ISO 3166"),
        (SERVER, {"fqdn": "a.example", "sans": "b.example"}, "sans", "a list of at most 100"),
        (SERVER, {"fqdn": "a.example", "sans": ["b..example"]}, "sans[0]", "DNS name"),
        (DEVICE, {"parent_fqdn": "c.example", "csrs": ["x"]}, "csrs[0]", "PEM certificate"),
        (
            DEVICE,
            {"parent_fqdn": "c.example", "aws_iot": {"thin": True}},
            "aws_iot.thin",
            "unknown",
        ),
        (RENEW, {"serial": "xyz"}, "serial", "1-40 hex digits"),
        (IOT_VERIFICATION, {}, "registration_code", "is required"),
    ],
)
def test_a_body_is_checked_from_the_declarations(
    request_name: str, body: dict[str, object], field: str, rule: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        validate_body(request_name, body)
    assert refused.value.field == field
    assert rule in refused.value.rule


def test_null_means_left_out_and_values_come_out_normalized() -> None:
    checked = validate_body(
        SERVER,
        {"fqdn": "MQTT.Example.COM", "sans": ["10.0.0.1", "Other.Example"], "country": "de",
         "csr": None},
    )  # fmt: skip
    assert checked.values == {
        "fqdn": "mqtt.example.com",
        "sans": ("10.0.0.1", "other.example"),
        "country": "DE",
    }

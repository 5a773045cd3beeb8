"""Every field of every request body, declared once: its JSON Schema, the bodies that take it
(and require it), what it means, its option in the `iotcert` CLI and whether the portal's form
offers it.

From these declarations come the request bodies' validation (`validate_body`: unknown fields,
types, bounds, allowed values; the meaning of a value, such as an FQDN's rules, is the field's
`normalize`), the OpenAPI request schemas (`request_schema`, merged into the served document by
chalicelib.api.spec), and the checks that the CLI and the portal offer exactly these fields
(tests/unit/test_fields.py). A new field is one declaration here, plus what it does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalicelib.bundles import BUNDLE_FORMATS
from chalicelib.errors import InvalidRequest
from chalicelib.iot_onboarding import DEFAULT_MODE, JITP, SNI_ONLY_MODE
from chalicelib.model import REVOCATION_REASONS, KeyType
from chalicelib.names import (
    MAX_COMMON_NAME_LENGTH,
    normalize_fqdn,
    normalize_subject_alt_name,
)
from chalicelib.ports.key_store import KEY_STORES

ROOT, INTERMEDIATE, SERVER, DEVICE = "root", "intermediate", "server", "device"
RENEW, REVOKE, BUNDLE = "renew", "revoke", "bundle"
IOT_VERIFICATION, IOT_REGISTRATION = "aws_iot_verification", "aws_iot_registration"
ISSUING = (ROOT, INTERMEDIATE, SERVER, DEVICE)
REQUESTS = {
    ROOT: "RootRequest",
    INTERMEDIATE: "IntermediateRequest",
    SERVER: "ServerRequest",
    DEVICE: "DeviceRequest",
    RENEW: "RenewRequest",
    REVOKE: "RevokeRequest",
    BUNDLE: "BundleRequest",
    IOT_VERIFICATION: "AwsIotVerificationRequest",
    IOT_REGISTRATION: "AwsIotRegistrationRequest",
}
"""Each request body, and its schema's name in the OpenAPI document."""

MAX_VALIDITY_DAYS = 36500
MAX_PATH_LENGTH = 8
MAX_SANS = 100
MAX_BULK = 1000
MAX_BULK_BY_KEY_TYPE = {
    KeyType.RSA_2048.value: 80,
    KeyType.RSA_3072.value: 20,
    KeyType.RSA_4096.value: 8,
}
"""RSA keys take long, and widely varying, times to generate: each limit keeps the p99 of its
largest bulk under half of Lambda's timeout (measured over 20 bulks by `make bench`,
bench/tails.py); every other key type, and CSRs, up to MAX_BULK."""
MAX_AWS_IOT_BULK = 40
"""Devices registered with AWS IoT in one request: each costs up to four IoT calls
(chalicelib.ports.iot_registry.IOT_DEVICE_CALLS), which must finish within API Gateway's 29 s."""
PEM_CSR = "-----BEGIN CERTIFICATE REQUEST-----"
Normalize = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Field:
    name: str
    description: str
    schema: dict[str, Any]
    requests: frozenset[str]
    required_in: frozenset[str] = frozenset()
    normalize: Normalize | None = None
    """The value's meaning, once the schema holds: `normalize(value, field name)`, which may
    refuse it (400) or return it in its one stored form."""
    cli: str | None = None  # the CLI's option ("--validity-days"), or its argument ("FQDN")
    portal: frozenset[str] = frozenset()  # the portal's forms that offer it
    item_description: str = ""  # for a list, what its items are
    rule: str | None = None  # the rule a value breaks its schema against, when said best so
    shared: str | None = None  # the OpenAPI schema its values are (KeyType, ...), by name


def _fqdn(value: Any, name: str) -> str:
    return normalize_fqdn(value, name)


def _certificate_fqdn(value: Any, name: str) -> str:
    fqdn = normalize_fqdn(value, name)
    if len(fqdn) > MAX_COMMON_NAME_LENGTH:
        raise InvalidRequest(
            name,
            f"must be at most {MAX_COMMON_NAME_LENGTH} characters: it is the certificate's "
            "common name, which X.509 limits to 64",
        )
    return fqdn


def _country(value: str, name: str) -> str:
    if not (value.isascii() and value.isalpha()):
        raise InvalidRequest(name, "must be a two-letter ISO 3166 country code such as 'DE'")
    return value.upper()


def _printable(value: str, name: str) -> str:
    if not value.isprintable():
        raise InvalidRequest(name, f"must be printable characters only, {len(value)} given")
    return value


def _csr(value: str, name: str) -> str:
    if PEM_CSR not in value:
        raise InvalidRequest(name, "must be a PEM certificate signing request")
    return value


def _sans(value: list[str], name: str) -> tuple[str, ...]:
    return tuple(
        normalize_subject_alt_name(item, f"{name}[{index}]") for index, item in enumerate(value)
    )


def _csrs(value: list[str], name: str) -> tuple[str, ...]:
    return tuple(_csr(item, f"{name}[{index}]") for index, item in enumerate(value))


def _serial(value: str, name: str) -> str:
    return format(int(value, 16), "x")


_KEY_TYPES = [key_type.value for key_type in KeyType]
_SUBJECT_FORMS = frozenset(ISSUING)
_ISSUED_BY_NAME = frozenset({ROOT, INTERMEDIATE, SERVER})
FIELDS: tuple[Field, ...] = (
    Field(
        name="fqdn",
        description="the certificate's name (its subject CN and first DNS name)",
        schema={"type": "string", "maxLength": MAX_COMMON_NAME_LENGTH},
        requests=_ISSUED_BY_NAME,
        required_in=_ISSUED_BY_NAME,
        normalize=_certificate_fqdn,
        cli="FQDN",
        portal=_ISSUED_BY_NAME,
    ),
    Field(
        name="parent_fqdn",
        description="the issuing CA; for an intermediate or a server, by default the closest "
        "existing CA above its name",
        schema={"type": "string"},
        requests=frozenset({INTERMEDIATE, SERVER, DEVICE}),
        required_in=frozenset({DEVICE}),
        normalize=_fqdn,
        cli="--parent",
        portal=frozenset({INTERMEDIATE, SERVER, DEVICE}),
    ),
    Field(
        name="path_length",
        description="how many CA levels may follow below this one (default 0: leaves only)",
        schema={"type": "integer", "minimum": 0, "maximum": MAX_PATH_LENGTH},
        requests=frozenset({INTERMEDIATE}),
        cli="--path-length",
        portal=frozenset({INTERMEDIATE}),
    ),
    Field(
        name="sans",
        description="more DNS names or IP addresses the server answers to",
        schema={"type": "array", "maxItems": MAX_SANS, "items": {"type": "string"}},
        requests=frozenset({SERVER}),
        normalize=_sans,
        cli="--san",
        portal=frozenset({SERVER}),
        item_description="names",
    ),
    Field(
        name="country",
        description="the subject's country: two letters (ISO 3166)",
        schema={"type": "string", "minLength": 2, "maxLength": 2},
        requests=_SUBJECT_FORMS,
        normalize=_country,
        cli="--country",
        portal=_SUBJECT_FORMS,
        rule="must be a two-letter ISO 3166 country code such as 'DE'",
    ),
    Field(
        name="state",
        description="the subject's state or province",
        schema={"type": "string", "minLength": 1, "maxLength": 128},
        requests=_SUBJECT_FORMS,
        normalize=_printable,
        cli="--state",
        portal=_SUBJECT_FORMS,
        rule="must be a string of 1-128 printable characters",
    ),
    Field(
        name="organization",
        description="the subject's organization",
        schema={"type": "string", "minLength": 1, "maxLength": 64},
        requests=_SUBJECT_FORMS,
        normalize=_printable,
        cli="--organization",
        portal=_SUBJECT_FORMS,
        rule="must be a string of 1-64 printable characters",
    ),
    Field(
        name="validity_days",
        description="lifetime in days (default root 3650, intermediate 1825, server 397, "
        "device 365; never past the issuer's end)",
        schema={"type": "integer", "minimum": 1, "maximum": MAX_VALIDITY_DAYS},
        requests=frozenset({*ISSUING, RENEW}),
        cli="--validity-days",
        portal=_SUBJECT_FORMS,
    ),
    Field(
        name="key_type",
        description="the key the service makes (default EC_P256; ED25519 for devices only); "
        "on renewal, a new key of this type",
        schema={"type": "string", "enum": _KEY_TYPES},
        requests=frozenset({*ISSUING, RENEW}),
        cli="--key-type",
        portal=_SUBJECT_FORMS,
        shared="KeyType",
    ),
    Field(
        name="key_store",
        description="where the CA's private key is made and kept: file (a document of the "
        "store), kms (AWS backend: an AWS KMS key) or pkcs11 (local backend: a PKCS#11 token "
        "such as SoftHSM); kms and pkcs11 keys never leave their store. Default: the "
        "deployment's CA_KEY_STORE (file locally, kms on AWS)",
        schema={"type": "string", "enum": list(KEY_STORES)},
        requests=frozenset({ROOT, INTERMEDIATE}),
        cli="--key-store",
        portal=frozenset({ROOT, INTERMEDIATE}),
        rule=f"must be one of {', '.join(KEY_STORES)}",
    ),
    Field(
        name="csr",
        description="a PEM certificate signing request: the caller's own key instead of a new one",
        schema={"type": "string"},
        requests=frozenset({SERVER, DEVICE, RENEW}),
        normalize=_csr,
        cli="--csr",
        rule="must be a PEM certificate signing request",
    ),
    Field(
        name="count",
        description=f"a bulk: this many devices (at most {MAX_BULK}; fewer with RSA keys, and "
        "under a CA whose key is in KMS)",
        schema={"type": "integer", "minimum": 1, "maximum": MAX_BULK},
        requests=frozenset({DEVICE}),
        cli="--count",
        portal=frozenset({DEVICE}),
    ),
    Field(
        name="csrs",
        description="a bulk: one device per PEM certificate signing request",
        schema={
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BULK,
            "items": {"type": "string"},
        },
        requests=frozenset({DEVICE}),
        normalize=_csrs,
        cli="--csr",
        item_description="PEM CSRs",
    ),
    Field(
        name="aws_iot",
        description="AWS backend: register each device with AWS IoT (`register`), and make "
        "its thing (`thing`: required with `register`, as the stack's device policy lets only "
        "a certificate attached to a thing connect; false registers the certificate alone, for "
        f"you to attach to a thing); at most {MAX_AWS_IOT_BULK} devices a request",
        schema={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "register": {
                    "type": "boolean",
                    "description": "register each certificate with AWS IoT (ACTIVE, with the "
                    "stack's device policy)",
                },
                "thing": {
                    "type": "boolean",
                    "description": "required with register: true makes each device's thing "
                    "(named by its UUID) and attaches the certificate; false registers the "
                    "certificate alone, which cannot connect until you attach it to a thing",
                },
            },
        },
        requests=frozenset({DEVICE}),
        cli="--aws-iot",
    ),
    Field(
        name="reuse_key",
        description="keep the current key (not for a certificate made from a CSR)",
        schema={"type": "boolean"},
        requests=frozenset({RENEW}),
        cli="--reuse-key",
    ),
    Field(
        name="revoke_previous",
        description="revoke the renewed generation (reason superseded)",
        schema={"type": "boolean"},
        requests=frozenset({RENEW}),
        cli="--revoke-previous",
    ),
    Field(
        name="serial",
        description="the generation renewed: a 409 unless it is still the current one",
        schema={"type": "string", "pattern": "^[0-9a-fA-F]{1,40}$"},
        requests=frozenset({RENEW}),
        normalize=_serial,
        cli="--serial",
        rule="must be a certificate serial number: 1-40 hex digits",
    ),
    Field(
        name="reason",
        description="why (RFC 5280; default unspecified)",
        schema={"type": "string", "enum": list(REVOCATION_REASONS)},
        requests=frozenset({REVOKE}),
        cli="--reason",
        portal=frozenset({REVOKE}),
        shared="RevocationReason",
        rule=f"must be an RFC 5280 reason: {', '.join(REVOCATION_REASONS)}",
    ),
    Field(
        name="format",
        description="pem, fullchain, chain or pkcs12 (the default in a body)",
        schema={"type": "string", "enum": list(BUNDLE_FORMATS)},
        requests=frozenset({BUNDLE}),
        cli="--format",
        portal=frozenset({BUNDLE}),
        shared="BundleFormat",
    ),
    Field(
        name="password",
        description="the PKCS#12 file's password (only ever in a body or a header)",
        schema={"type": "string", "minLength": 1},
        requests=frozenset({BUNDLE}),
        cli="--password",
        portal=frozenset({BUNDLE}),
        rule="must be a non-empty string",
    ),
    Field(
        name="registration_code",
        description="the account's code, as `aws iot get-registration-code` gives it",
        schema={"type": "string", "pattern": "^[A-Za-z0-9]{1,64}$"},
        requests=frozenset({IOT_VERIFICATION}),
        required_in=frozenset({IOT_VERIFICATION}),
        cli="CODE",
        rule="must be 1-64 letters and digits, as `aws iot get-registration-code` returns",
    ),
    Field(
        name="mode",
        description="DEFAULT (the default): proven by a verification certificate; SNI_ONLY",
        schema={"type": "string", "enum": [DEFAULT_MODE, SNI_ONLY_MODE]},
        requests=frozenset({IOT_REGISTRATION}),
        cli="--mode",
        rule=f"must be {DEFAULT_MODE} or {SNI_ONLY_MODE}",
    ),
    Field(
        name="auto_registration",
        description="devices register at their first connection (default true)",
        schema={"type": "boolean"},
        requests=frozenset({IOT_REGISTRATION}),
        cli="--no-auto-registration",
    ),
    Field(
        name="provisioning",
        description="jitp (the default): just-in-time provisioning; none",
        schema={"type": "string", "enum": [JITP, "none"]},
        requests=frozenset({IOT_REGISTRATION}),
        cli="--provisioning",
        rule=f"must be {JITP} or none",
    ),
)
BY_NAME = {declared.name: declared for declared in FIELDS}


def fields_of(request: str) -> tuple[Field, ...]:
    return tuple(declared for declared in FIELDS if request in declared.requests)


def request_schema(request: str) -> dict[str, Any]:
    """The OpenAPI (JSON Schema) of a request body: a plain object naming each field (client
    generators type an allOf with sibling properties as its first part alone). An optional
    field may be null, which means left out."""
    properties = {}
    for declared in fields_of(request):
        if declared.shared is not None:  # one enum type for every request that takes it
            reference = {"$ref": f"#/components/schemas/{declared.shared}"}
            properties[declared.name] = {**reference, "description": declared.description}
            continue
        schema = dict(declared.schema)
        if request not in declared.required_in:
            if "enum" in schema:  # a null in an enum reads as a missing value to many tools
                schema = {"oneOf": [schema, {"type": "null"}]}
            else:
                schema["type"] = [schema["type"], "null"]
        properties[declared.name] = {**schema, "description": declared.description}
    required = [d.name for d in fields_of(request) if request in d.required_in]
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


@dataclass
class Checked:
    """A body's values once checked: each field given (null ones left out), normalized."""

    values: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def __contains__(self, name: str) -> bool:
        return name in self.values


def validate_body(request: str, body: Mapping[str, Any]) -> Checked:
    """Check `body` against the declarations of `request`'s fields; the first problem is a 400
    naming the field and the rule."""
    declared = {d.name: d for d in fields_of(request)}
    unknown = sorted(set(body) - set(declared))
    if unknown:
        raise InvalidRequest(unknown[0], f"unknown field; allowed: {', '.join(sorted(declared))}")
    checked = Checked()
    for name, spec in declared.items():
        value = body.get(name)
        if value is None:
            if request in spec.required_in:
                raise InvalidRequest(name, "is required")
            continue
        try:
            _check(value, spec.schema, name, spec.item_description)
        except InvalidRequest as broken:
            if spec.rule is None or broken.field != name:
                raise
            raise InvalidRequest(name, spec.rule) from broken
        checked.values[name] = spec.normalize(value, name) if spec.normalize else value
    return checked


def _check(value: Any, schema: Mapping[str, Any], name: str, item: str = "") -> None:
    """The JSON Schema keywords the declarations use, each refused in the API's words."""
    kind = schema["type"]
    if kind == "string":
        _check_string(value, schema, name)
    elif kind == "integer":
        low, high = int(schema["minimum"]), int(schema["maximum"])
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidRequest(name, f"must be a whole number from {low} to {high}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise InvalidRequest(name, "must be true or false")
    elif kind == "array":
        low, high = int(schema.get("minItems", 0)), int(schema["maxItems"])
        if not isinstance(value, list) or not low <= len(value) <= high:
            bounds = f"at most {high}" if low == 0 else f"{low} to {high}"
            raise InvalidRequest(name, f"must be a list of {bounds} {item or 'items'}")
        for index, element in enumerate(value):
            _check(element, schema["items"], f"{name}[{index}]")
    elif kind == "object":
        if not isinstance(value, dict):
            raise InvalidRequest(name, "must be an object of " + ", ".join(schema["properties"]))
        allowed = schema["properties"]
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            raise InvalidRequest(
                f"{name}.{unknown[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}"
            )
        for key, element in value.items():
            if element is not None:
                _check(element, allowed[key], f"{name}.{key}")


def _check_string(value: Any, schema: Mapping[str, Any], name: str) -> None:
    if not isinstance(value, str):
        if "enum" in schema:
            raise InvalidRequest(name, f"must be one of {', '.join(schema['enum'])}")
        raise InvalidRequest(name, "must be a string")
    if "enum" in schema and value not in schema["enum"]:
        raise InvalidRequest(name, f"must be one of {', '.join(schema['enum'])}")
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if len(value) < low or (high is not None and len(value) > high):
        if low == high:
            raise InvalidRequest(name, f"must be {low} characters")
        bound = f"{low}-{high}" if high is not None else f"at least {low}"
        raise InvalidRequest(name, f"must be a string of {bound} characters")
    pattern = schema.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise InvalidRequest(name, f"must match {pattern}")

"""The audit trail within a request: one certificate's audit rides on the request's line; with
more, each is written as it comes; one left unclaimed is still written."""

from __future__ import annotations

import pytest

from chalicelib.audit import audit, claim, request_audit
from chalicelib.model import CertificateRecord
from tests.fixtures import AuditLines
from tests.records import make_record


def _certificate(fqdn: str) -> CertificateRecord:
    return make_record(fqdn)


def test_outside_a_request_each_audit_is_written_at_once(audit_lines: AuditLines) -> None:
    audit("issued", _certificate("a.example.com"))
    assert [line["fqdn"] for line in audit_lines.lines] == ["a.example.com"]


def test_one_audit_in_a_request_is_kept_for_its_line(audit_lines: AuditLines) -> None:
    with request_audit() as state:
        audit("issued", _certificate("a.example.com"))
        kept = claim(state)

    assert audit_lines.lines == []
    assert kept["audit"] == "issued" and kept["fqdn"] == "a.example.com"


def test_several_audits_in_a_request_are_each_written_in_order(
    audit_lines: AuditLines,
) -> None:
    with request_audit() as state:
        audit("issued", _certificate("a.example.com"))
        assert audit_lines.lines == []
        audit("issued", _certificate("b.example.com"))
        audit("issued", _certificate("c.example.com"))
        assert claim(state) == {}

    assert [line["fqdn"] for line in audit_lines.lines] == [
        "a.example.com",
        "b.example.com",
        "c.example.com",
    ]


def test_an_audit_unclaimed_when_the_request_fails_is_still_written(
    audit_lines: AuditLines,
) -> None:
    with pytest.raises(RuntimeError), request_audit():
        audit("revoked", _certificate("a.example.com"))
        raise RuntimeError("the request failed after the revocation was stored")

    assert [(line["audit"], line["fqdn"]) for line in audit_lines.lines] == [
        ("revoked", "a.example.com")
    ]

"""The audit trail: what was issued, renewed or revoked, as JSON on its own logger (its time and
level are the formatter's, chalicelib/api/middleware.py).

Within an HTTP request (`request_audit`), the audit of the one certificate a request issues,
renews or revokes is kept for the request's own log line, so a request writes one line. A
request that audits more than one (a bulk, a revocation of several generations) writes a line
for each as it is stored, the first included, then its request line: a crash part-way loses no
stored certificate's line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from chalicelib.events import CertificateExpiring
from chalicelib.model import ROOT_PARENT, CertificateRecord

audit_log = logging.getLogger("iot_cert_service.audit")


@dataclass
class RequestAudit:
    """The audit entry kept for the request's line, if the request audited exactly one."""

    entry: dict[str, Any] | None = None
    written: bool = False  # more than one: each was written as it came


_current: ContextVar[RequestAudit | None] = ContextVar("request_audit", default=None)


@contextmanager
def request_audit() -> Iterator[RequestAudit]:
    """Audits within keep the first entry for the caller's line; one left unclaimed (the
    request failed before its line) is written on the way out."""
    state = RequestAudit()
    token = _current.set(state)
    try:
        yield state
    finally:
        _current.reset(token)
        if state.entry is not None:
            _write(state.entry)


def claim(state: RequestAudit) -> dict[str, Any]:
    """The entry kept for the request's line (empty if none), no longer to be written alone."""
    entry, state.entry = state.entry or {}, None
    return entry


def _entry(
    action: str, fqdn: str, cert_type: str, parent_fqdn: str, serial: str, **extra: str | int
) -> dict[str, Any]:
    """What, which certificate, by which CA (`null` for a root, as the API shows it)."""
    parent = None if parent_fqdn == ROOT_PARENT else parent_fqdn
    return {"audit": action, "fqdn": fqdn, "type": cert_type, "parent_fqdn": parent,
            "serial": serial, **extra}  # fmt: skip


def audit(action: str, record: CertificateRecord, **extra: str | int) -> None:
    entry = _entry(action, record.fqdn, record.cert_type.value, record.parent_fqdn,
                   record.serial, **extra)  # fmt: skip
    state = _current.get()
    if state is None or state.written:
        _write(entry)
    elif state.entry is None:
        state.entry = entry
    else:  # a second one: both are written now, in order, and every next one as it comes
        _write(state.entry)
        _write(entry)
        state.entry, state.written = None, True


def _write(entry: dict[str, Any]) -> None:
    audit_log.info(json.dumps(entry))


def audit_issued(record: CertificateRecord, previous: CertificateRecord | None = None) -> None:
    """Called as each certificate is stored; a renewal names the generation it renewed."""
    if previous is None:
        audit("issued", record, key_type=record.key_type.value)
    else:
        audit("renewed", record, generation=record.generation, previous_serial=previous.serial)


def audit_notice(notice: CertificateExpiring) -> None:
    """An expiry notice (the local record of `expiring` events)."""
    _write(_entry("expiring", notice.fqdn, notice.cert_type, notice.parent_fqdn, notice.serial,
                  not_after=notice.not_after, days_left=notice.days_left))  # fmt: skip

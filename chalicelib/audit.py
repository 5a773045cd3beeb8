"""The audit trail: one JSON line per issuance and per revocation, on its own logger (its time
and level are the formatter's, chalicelib/api/middleware.py)."""

from __future__ import annotations

import json
import logging

from chalicelib.model import ROOT_PARENT, CertificateRecord

audit_log = logging.getLogger("iot_cert_service.audit")


def audit(action: str, record: CertificateRecord, **extra: str | int) -> None:
    """What, which certificate, by which CA (`null` for a root, as the API shows it)."""
    line = {
        "audit": action,
        "fqdn": record.fqdn,
        "type": record.cert_type.value,
        "parent_fqdn": None if record.parent_fqdn == ROOT_PARENT else record.parent_fqdn,
        "serial": record.serial,
        **extra,
    }
    audit_log.info(json.dumps(line))


def audit_issued(record: CertificateRecord, previous: CertificateRecord | None = None) -> None:
    """Written as each certificate is stored, so a crash part-way loses no stored one's line;
    a renewal names the generation it renewed."""
    if previous is None:
        audit("issued", record, key_type=record.key_type.value)
    else:
        audit("renewed", record, generation=record.generation, previous_serial=previous.serial)

"""ACM: server certificates imported with their chain and key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chalicelib import pki
from chalicelib.adapters.aws.errors import aws_errors
from chalicelib.errors import StorageError
from chalicelib.model import CertificateRecord
from chalicelib.ownership import Ownership
from chalicelib.ports.importer import CertificateImportError

ACM_KEY_TYPES = (
    "RSA_1024", "RSA_2048", "RSA_3072", "RSA_4096",
    "EC_prime256v1", "EC_secp384r1", "EC_secp521r1",
)  # fmt: skip
"""Every key type ACM holds: ListCertificates returns only RSA 1024 and 2048 unless asked for
more, and the service's server certificates are EC P-256 by default."""


class AcmImporter:
    """Imports server certificates into ACM with their chain and key, tagged with the FQDN and
    the owner (app and stage), by which a stage's teardown finds them."""

    def __init__(self, client: Any, ownership: Ownership) -> None:
        self._client = client
        self._ownership = ownership

    def import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str, chain_pem: str
    ) -> str | None:
        arguments: dict[str, Any] = {
            "Certificate": record.certificate_pem.encode(),
            "PrivateKey": private_key_pem.encode(),
            "CertificateChain": chain_pem.encode(),
        }
        if record.acm_certificate_arn:  # a re-import keeps the tags (ACM refuses new ones)
            arguments["CertificateArn"] = record.acm_certificate_arn
        else:
            arguments["Tags"] = [{"Key": "fqdn", "Value": record.fqdn}, *self._ownership.tags()]
        try:
            return self._client.import_certificate(**arguments)["CertificateArn"]
        except aws_errors() as err:
            raise CertificateImportError(f"ACM import of {record.fqdn} failed: {err}") from err

    def find_imported(self, records: Sequence[CertificateRecord]) -> dict[str, str]:
        """One pass over the account's certificates: those named like a record are fetched and
        compared by fingerprint, so a certificate someone else imported for the name is never
        taken for ours."""
        wanted = {record.fqdn: record for record in records}
        found: dict[str, str] = {}
        if not wanted:
            return found
        try:
            pages = self._client.get_paginator("list_certificates").paginate(
                Includes={"keyTypes": list(ACM_KEY_TYPES)}
            )
            for page in pages:
                for summary in page.get("CertificateSummaryList", []):
                    record = wanted.get(summary.get("DomainName", ""))
                    if record is None or record.fqdn in found:
                        continue
                    arn = summary["CertificateArn"]
                    pem = self._client.get_certificate(CertificateArn=arn)["Certificate"]
                    imported = pki.fingerprint_sha256(pki.load_certificate(pem))
                    if imported == record.fingerprint_sha256:
                        found[record.fqdn] = arn
        except aws_errors() as err:
            raise StorageError(f"could not look up imported certificates in ACM: {err}") from err
        return found

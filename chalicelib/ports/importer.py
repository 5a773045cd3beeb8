"""CertificateImporter port: where server certificates are also imported (ACM on AWS)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chalicelib.model import CertificateRecord


class CertificateImportError(Exception):
    """The certificate could not be imported; it is stored all the same."""


class CertificateImporter(Protocol):
    def import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str, chain_pem: str
    ) -> str | None:
        """Import the certificate with its key and the chain above it; the imported
        certificate's ARN. When
        the record has an ARN (a renewal), the certificate is imported into that same ARN, so
        what refers to it (load balancers, brokers) picks up the new generation."""

    def find_imported(self, records: Sequence[CertificateRecord]) -> dict[str, str]:
        """FQDN to ARN of those of `records` that were imported (`make reconcile` restores the
        ARN of a server certificate whose `created` event, which carried it, was lost)."""

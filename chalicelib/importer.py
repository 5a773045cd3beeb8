"""CertificateImporter port: where server certificates are also imported (ACM on AWS)."""

from __future__ import annotations

from typing import Protocol

from chalicelib.model import CertificateRecord


class CertificateImporter(Protocol):
    def import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str
    ) -> str | None:
        """Import the certificate with its chain and key; the imported certificate's ARN."""


class NullImporter:
    """The local backend has no ACM: nothing is imported and no ARN is returned."""

    def import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str
    ) -> str | None:
        return None

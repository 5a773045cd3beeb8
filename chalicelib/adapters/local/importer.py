"""The local backend has no ACM."""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.model import CertificateRecord


class NullImporter:
    """The local backend has no ACM: nothing is imported and no ARN is returned."""

    def import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str, chain_pem: str
    ) -> str | None:
        return None

    def find_imported(self, records: Sequence[CertificateRecord]) -> dict[str, str]:
        return {}

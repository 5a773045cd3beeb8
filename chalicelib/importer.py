"""CertificateImporter port: where server certificates are also imported (ACM on AWS)."""

from __future__ import annotations

from typing import Any, Protocol

from chalicelib.aws import aws_errors
from chalicelib.model import CertificateRecord


class CertificateImportError(Exception):
    """The certificate could not be imported; it is stored all the same."""


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


class AcmImporter:
    """Imports server certificates into ACM with their chain and key, tagged with the FQDN."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def import_server_certificate(
        self, record: CertificateRecord, private_key_pem: str
    ) -> str | None:
        arguments: dict[str, Any] = {
            "Certificate": record.certificate_pem.encode(),
            "PrivateKey": private_key_pem.encode(),
            "CertificateChain": record.chain_pem.encode(),
            "Tags": [
                {"Key": "fqdn", "Value": record.fqdn},
                {"Key": "managed-by", "Value": "iot-cert-service"},
            ],
        }
        try:
            return self._client.import_certificate(**arguments)["CertificateArn"]
        except aws_errors() as err:
            raise CertificateImportError(f"ACM import of {record.fqdn} failed: {err}") from err

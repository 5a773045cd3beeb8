"""Domain errors. The API layer maps each to one HTTP status, in one place."""

from __future__ import annotations


class CertificateServiceError(Exception):
    """Base of every error the service raises on purpose."""


class InvalidRequest(CertificateServiceError):
    """The request breaks a rule; the message names the field and the rule (HTTP 400)."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotFound(CertificateServiceError):
    """An unknown certificate or parent CA (HTTP 404)."""


class Conflict(CertificateServiceError):
    """The request clashes with the current state, e.g. issuing under a revoked CA (HTTP 409)."""


class AlreadyExists(Conflict):
    """The FQDN is taken (or the certificate already revoked); nothing was written (HTTP 409)."""


class Forbidden(CertificateServiceError):
    """Never served, whoever asks: a CA's private key (HTTP 403)."""


class Unsupported(CertificateServiceError):
    """The backend cannot do this, e.g. AWS IoT registration on the local backend (HTTP 501)."""


class PayloadTooLarge(CertificateServiceError):
    """The request body is over the size limit (HTTP 413)."""


class StorageError(CertificateServiceError):
    """A backend failed in a way the caller cannot fix (HTTP 500, logged)."""

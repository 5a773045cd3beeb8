"""Domain errors. Each carries what went wrong and, as a `Concept`, what it is about; the API
layer alone words that with the request's own field names and maps the error to one HTTP
status, in one place (chalicelib/api/errors.py)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum


class Concept(StrEnum):
    """What in a request an error is about, in the domain's words."""

    CERTIFICATE = "certificate"  # the existing certificate a request names
    ISSUER = "issuer"  # the CA that is to sign
    NAME = "name"  # the name of a new certificate
    VALIDITY = "validity"
    KEY_TYPE = "key_type"
    KEY_STORE = "key_store"
    CSR = "csr"
    CSRS = "csrs"  # the CSRs of a bulk, as a whole
    COUNT = "count"  # the size of a bulk
    PATH_LENGTH = "path_length"
    SERIAL = "serial"
    KEY_REUSE = "key_reuse"
    AWS_IOT = "aws_iot"
    PROVISIONING = "provisioning"


class CertificateServiceError(Exception):
    """Base of every error the service raises on purpose: a message for people, and what it is
    about (`concept`, or `field` where the API itself refused an input; `index` for one item of a
    list, such as the third CSR of a bulk)."""

    def __init__(
        self,
        message: str,
        concept: Concept | None = None,
        *,
        field: str | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.concept = concept
        self.field = field
        self.index = index


class InvalidRequest(CertificateServiceError):
    """The request breaks a rule (HTTP 400). The API layer raises it naming its own `field`;
    the domain names a `Concept`."""

    def __init__(self, about: Concept | str, rule: str, *, index: int | None = None) -> None:
        if isinstance(about, Concept):
            super().__init__(rule, about, index=index)
        else:
            super().__init__(rule, field=about, index=index)
        self.rule = rule


class NotFound(CertificateServiceError):
    """An unknown certificate or CA (HTTP 404)."""


class Conflict(CertificateServiceError):
    """The request clashes with the current state (HTTP 409)."""


class AlreadyExists(Conflict):
    """The name (or generation, or revocation) is taken; nothing was written (HTTP 409)."""


class CaRevoked(Conflict):
    """The CA that would sign, or one above it, is revoked."""

    def __init__(
        self, ca_fqdn: str, revoked_at: datetime | None, reason: str | None, concept: Concept
    ) -> None:
        when = ""
        if revoked_at is not None:
            when = f" on {revoked_at.strftime('%Y-%m-%dT%H:%M:%SZ')} ({reason})"
        super().__init__(f"CA {ca_fqdn} was revoked{when} and issues no more certificates", concept)
        self.ca_fqdn = ca_fqdn
        self.revoked_at = revoked_at
        self.reason = reason


class CertificateIsRevoked(Conflict):
    """The certificate a request names is revoked (it is renewed no more)."""

    def __init__(self, fqdn: str) -> None:
        super().__init__(
            f"{fqdn} is revoked; a revoked certificate is not renewed (issue a new one)",
            Concept.CERTIFICATE,
        )
        self.fqdn = fqdn


class Forbidden(CertificateServiceError):
    """Never served, whoever asks: a CA's private key (HTTP 403)."""


class Unsupported(CertificateServiceError):
    """The backend cannot do this, e.g. AWS IoT registration on the local backend (HTTP 501)."""


class PayloadTooLarge(CertificateServiceError):
    """The request body is over the size limit (HTTP 413)."""


class StorageError(CertificateServiceError):
    """A backend failed in a way the caller cannot fix (HTTP 500, logged)."""


class CorruptDocument(StorageError):
    """A stored document cannot be read as what its key says it is (HTTP 500, logged; `make
    fsck` names it)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"stored document {key} is corrupt: {problem}")
        self.key = key
        self.problem = problem

"""The data the service speaks: certificate types, key types, stored records, inventory items."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

ROOT_PARENT = "Root"
"""The parent of every root CA in the inventory and in events (a root has no issuer of ours)."""

FILE_KEY = "file"
"""The key store of a key kept as a document (chalicelib.ports.key_store.FILE_KEY_STORE)."""
STATUS_ACTIVE = "active"
STATUS_REVOKED = "revoked"
STATUS_DELETED = "deleted"
"""An inventory item's status once its certificate is deleted: a tombstone that no listing shows
and no late event revives (chalicelib.ports.inventory)."""

REVOCATION_REASONS = (
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise",
)  # fmt: skip
"""RFC 5280 CRLReason names a revocation may give (removeFromCRL is for delta CRLs only)."""
REASON_SUPERSEDED = "superseded"
_COMPROMISE = frozenset({"keyCompromise", "cACompromise"})


def inherited_reason(ca_reason: str) -> str:
    """The reason a certificate is revoked with because its CA was: a compromised CA key makes
    its certificates `cACompromise`; any other reason carries over."""
    return "cACompromise" if ca_reason in _COMPROMISE else ca_reason


class CertType(StrEnum):
    """The kind of a certificate; its rules are in chalicelib.kinds."""

    ROOT = "Root"
    INTERMEDIATE = "Intermediate"
    SERVER = "Server"
    CLIENT = "Client"


class KeyType(StrEnum):
    EC_P256 = "EC_P256"
    EC_P384 = "EC_P384"
    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    ED25519 = "ED25519"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("RSA_")


def utc_now() -> datetime:
    """Now, to the second: the precision of every timestamp the service records."""
    return datetime.now(UTC).replace(microsecond=0)


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, to the second: the one timestamp format of the API and events."""
    if moment.tzinfo is UTC:
        return _format_utc(moment)
    return _format_utc(moment.astimezone(UTC))


def days_left(not_after: str, now: datetime) -> int:
    """The whole days from `now` to an ISO 8601 UTC time (negative once it has passed)."""
    return (datetime.fromisoformat(not_after.replace("Z", "+00:00")) - now) // timedelta(days=1)


@lru_cache(maxsize=64)
def _format_utc(moment: datetime) -> str:
    """Cached for UTC times only (equal ones are the same instant): the certificates of a bulk
    share their validity and creation times, each formatted several times (record, event,
    inventory item, response)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SubjectDetails:
    """The optional subject attributes a caller may add next to the common name."""

    country: str | None = None
    state: str | None = None
    organization: str | None = None


@dataclass(frozen=True)
class AwsIotOptions:
    """Device issuance's `aws_iot`: register the certificate with AWS IoT, and make its thing."""

    register: bool
    thing: bool


@dataclass(frozen=True)
class IotDeviceOutcome:
    """What became of one device's AWS IoT registration: its IoT certificate, or why not."""

    certificate_id: str | None = None
    certificate_arn: str | None = None
    thing_name: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class IssueRequest:
    """One validated POST body. Fields a certificate type does not take stay at their defaults."""

    cert_type: CertType
    fqdn: str | None = None
    parent_fqdn: str | None = None
    subject: SubjectDetails = field(default_factory=SubjectDetails)
    validity_days: int | None = None
    key_type: KeyType = KeyType.EC_P256
    sans: tuple[str, ...] = ()
    path_length: int = 0
    csr: str | None = None
    count: int | None = None  # bulk devices: this many, each with a server-generated key
    csrs: tuple[str, ...] = ()  # bulk devices: one certificate per CSR
    aws_iot: AwsIotOptions | None = None  # devices: register each with AWS IoT once stored
    key_store: str | None = None  # CAs: where the key is kept; None: the deployment's default

    @property
    def is_bulk(self) -> bool:
        return self.count is not None or bool(self.csrs)


@dataclass(frozen=True)
class RenewRequest:
    """One validated renewal body: every field is optional."""

    validity_days: int | None = None
    key_type: KeyType | None = None  # a new key of this type; None: of the current key's type
    csr: str | None = None  # the new key is the caller's
    reuse_key: bool | None = None  # the current key again (a CA is always renewed with its own)
    revoke_previous: bool = False  # the renewed generation is revoked (superseded)
    serial: str | None = None  # the generation renewed; 409 unless it is still the current one


@dataclass(frozen=True)
class CertificateRecord:
    """Everything stored for one certificate: one object, written once."""

    fqdn: str
    cert_type: CertType
    parent_fqdn: str
    serial: str
    not_before: datetime
    not_after: datetime
    key_type: KeyType
    fingerprint_sha256: str
    certificate_pem: str
    chain_pem: str
    """The chain as it was when signed, kept by documents of earlier versions and "" in newer
    ones: what the service serves is built from the CAs' current generations (authority.py)."""
    private_key_pem: str | None  # None when issued from a CSR: the key never left the device
    created_at: datetime
    device_id: str | None = None
    acm_certificate_arn: str | None = None
    status: str = STATUS_ACTIVE
    generation: int = 1  # 1 for the first issuance, N + 1 for the renewal of generation N
    previous_serial: str | None = None  # the serial of the generation this one renewed
    key_store: str = FILE_KEY
    """Where the private key is: `file` (`private_key_pem`), or the key store of a CA's key
    (chalicelib.ports.key_store), which then names it by `key_id` and holds it alone."""
    key_id: str | None = None

    @property
    def valid_until(self) -> str:
        return self.not_after.date().isoformat()

    def to_document(self) -> dict[str, Any]:
        return {
            "fqdn": self.fqdn,
            "type": self.cert_type.value,
            "parent_fqdn": self.parent_fqdn,
            "serial": self.serial,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key_type": self.key_type.value,
            "fingerprint_sha256": self.fingerprint_sha256,
            "certificate": self.certificate_pem,
            "chain": self.chain_pem,
            "private_key": self.private_key_pem,
            "created_at": self.created_at.isoformat(),
            "device_id": self.device_id,
            "acm_certificate_arn": self.acm_certificate_arn,
            "status": self.status,
            "generation": self.generation,
            "previous_serial": self.previous_serial,
            **({"key_store": self.key_store, "key_id": self.key_id} if self.key_id else {}),
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> CertificateRecord:
        return cls(
            fqdn=document["fqdn"],
            cert_type=CertType(document["type"]),
            parent_fqdn=document["parent_fqdn"],
            serial=document["serial"],
            not_before=datetime.fromisoformat(document["not_before"]),
            not_after=datetime.fromisoformat(document["not_after"]),
            key_type=KeyType(document["key_type"]),
            fingerprint_sha256=document["fingerprint_sha256"],
            certificate_pem=document["certificate"],
            chain_pem=document.get("chain") or "",
            private_key_pem=document["private_key"],
            created_at=datetime.fromisoformat(document["created_at"]),
            device_id=document.get("device_id"),
            acm_certificate_arn=document.get("acm_certificate_arn"),
            status=document.get("status", STATUS_ACTIVE),
            generation=document.get("generation", 1),
            previous_serial=document.get("previous_serial"),
            key_store=document.get("key_store", FILE_KEY),
            key_id=document.get("key_id"),
        )


@dataclass(frozen=True)
class RevocationRecord:
    """A revocation, stored once next to the certificate (whose own object is never rewritten).

    Revoking a certificate revokes every generation of it not revoked before (`serials`; `serial`
    is the current one) and ends its renewals. A single superseded generation (a renewal's
    `revoke_previous`) has a revocation of its own, `generation_only`, naming just its serial.
    """

    fqdn: str
    issuer_fqdn: str
    serial: str
    reason: str
    revoked_at: datetime
    serials: tuple[str, ...] = ()  # every serial it revokes; () means just `serial`
    generation_only: bool = False

    @property
    def revoked_serials(self) -> tuple[str, ...]:
        return self.serials or (self.serial,)

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "fqdn": self.fqdn,
            "issuer_fqdn": self.issuer_fqdn,
            "serial": self.serial,
            "reason": self.reason,
            "revoked_at": self.revoked_at.isoformat(),
        }
        if self.serials:
            document["serials"] = list(self.serials)
        if self.generation_only:
            document["generation_only"] = True
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> RevocationRecord:
        return cls(
            fqdn=document["fqdn"],
            issuer_fqdn=document["issuer_fqdn"],
            serial=document["serial"],
            reason=document["reason"],
            revoked_at=datetime.fromisoformat(document["revoked_at"]),
            serials=tuple(document.get("serials", ())),
            generation_only=document.get("generation_only", False),
        )


@dataclass(frozen=True)
class IssuedCertificate:
    """A freshly issued certificate; `private_key_pem` is set for leaf certificates only."""

    record: CertificateRecord
    private_key_pem: str | None
    aws_iot: IotDeviceOutcome | None = None  # devices issued with `aws_iot.register`
    chain_pem: str = ""  # the CAs above it, as they stood when it was answered for


@dataclass(frozen=True)
class InventoryItem:
    """One row of the inventory (the DynamoDB item and the SQLite row have these attributes)."""

    fqdn: str
    parent_fqdn: str
    cert_type: CertType
    valid_until: str
    serial: str
    not_after: str
    key_type: str
    fingerprint: str
    created_at: str
    status: str = STATUS_ACTIVE
    acm_certificate_arn: str | None = None
    generation: int = 1


@dataclass(frozen=True)
class ChildFilter:
    """List filters: items whose NotAfter is at or before `not_after_until`, and/or a status."""

    not_after_until: str | None = None
    status: str | None = None

    def matches(self, item: InventoryItem) -> bool:
        if self.not_after_until is not None and item.not_after > self.not_after_until:
            return False
        return self.status is None or item.status == self.status


NO_FILTER = ChildFilter()


@dataclass(frozen=True)
class InventoryPage:
    """A page of children; `last_fqdn` is set when more items follow it."""

    items: list[InventoryItem]
    last_fqdn: str | None


@dataclass(frozen=True)
class CertificatePage:
    items: list[InventoryItem]
    last_fqdn: str | None  # set when more items follow it


@dataclass(frozen=True)
class ExpiryCursor:
    """Where a page of the fleet-wide expiry listing ended (its order: NotAfter, FQDN, parent)."""

    not_after: str
    fqdn: str
    parent_fqdn: str


@dataclass(frozen=True)
class ExpiringPage:
    """Active certificates whose NotAfter lies in a window, soonest first; `last` is set when
    more follow it. `read`: the items the inventory read for the page (its cost)."""

    items: list[InventoryItem]
    last: ExpiryCursor | None
    read: int = 0

"""The events the service publishes: `created`, `renewed`, `revoked` and `deleted` (and the
expiry scan's `expiring`), as EventBridge details.

Locally, events are handed synchronously to the inventory keeper, the use case that the Lambda
handler of the EventBridge rule runs after parsing the envelope: both paths share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Protocol

from chalicelib.model import (
    CertificateRecord,
    CertType,
    InventoryItem,
    RevocationRecord,
    iso_utc,
)

EVENT_SOURCE = "certificates"
CREATED_DETAIL_TYPE = "created"
RENEWED_DETAIL_TYPE = "renewed"
REVOKED_DETAIL_TYPE = "revoked"
CASCADE_DETAIL_TYPE = "revocation-cascade"
EXPIRING_DETAIL_TYPE = "expiring"
DELETED_DETAIL_TYPE = "deleted"
EXPIRING_EVENT_PATTERN = {"source": [EVENT_SOURCE], "detail-type": [EXPIRING_DETAIL_TYPE]}
"""What a subscriber to expiry notices receives (an e-mail, an SNS topic)."""
INVENTORY_EVENT_PATTERN = {
    "source": [EVENT_SOURCE],
    "detail-type": [
        CREATED_DETAIL_TYPE,
        RENEWED_DETAIL_TYPE,
        REVOKED_DETAIL_TYPE,
        DELETED_DETAIL_TYPE,
    ],
}
"""What the inventory handler receives (its Lambda's rule)."""
CASCADE_EVENT_PATTERN = {
    "source": [EVENT_SOURCE],
    "$or": [
        {
            "detail-type": [REVOKED_DETAIL_TYPE, CASCADE_DETAIL_TYPE],
            "detail": {"Type": ["Root", "Intermediate"]},
        },
        {"detail-type": [DELETED_DETAIL_TYPE]},
    ],
}
"""What the cascade handler receives (its Lambda's rule): a CA's revocation, the rest of a walk
one invocation could not finish, and a deletion, whose AWS IoT registrations it removes
(chalicelib.cascade)."""


@dataclass(frozen=True)
class CertificateCreated:
    fqdn: str
    cert_type: CertType
    parent_fqdn: str
    valid_until: str
    serial: str
    not_after: str
    key_type: str
    fingerprint: str
    acm_certificate_arn: str | None = None
    detail_type: ClassVar[str] = CREATED_DETAIL_TYPE

    @classmethod
    def from_record(cls, record: CertificateRecord) -> CertificateCreated:
        return cls(
            fqdn=record.fqdn,
            cert_type=record.cert_type,
            parent_fqdn=record.parent_fqdn,
            valid_until=record.valid_until,
            serial=record.serial,
            not_after=iso_utc(record.not_after),
            key_type=record.key_type.value,
            fingerprint=record.fingerprint_sha256,
            acm_certificate_arn=record.acm_certificate_arn,
        )

    def to_detail(self) -> dict[str, Any]:
        """The event detail; `AcmCertificateArn` only for server certificates imported to ACM."""
        detail: dict[str, Any] = {
            "FQDN": self.fqdn,
            "Type": self.cert_type.value,
            "ParentFQDN": self.parent_fqdn,
            "ValidUntil": self.valid_until,
            "Serial": self.serial,
            "NotAfter": self.not_after,
            "KeyType": self.key_type,
            "Fingerprint": self.fingerprint,
        }
        if self.acm_certificate_arn:
            detail["AcmCertificateArn"] = self.acm_certificate_arn
        return detail

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> CertificateCreated:
        """Parse an event detail; KeyError/ValueError for a malformed one (the handler fails)."""
        return cls(
            fqdn=str(detail["FQDN"]),
            cert_type=CertType(detail["Type"]),
            parent_fqdn=str(detail["ParentFQDN"]),
            valid_until=str(detail["ValidUntil"]),
            serial=str(detail["Serial"]),
            not_after=str(detail["NotAfter"]),
            key_type=str(detail["KeyType"]),
            fingerprint=str(detail["Fingerprint"]),
            acm_certificate_arn=detail.get("AcmCertificateArn"),
        )

    def to_inventory_item(self, created_at: str) -> InventoryItem:
        return InventoryItem(
            fqdn=self.fqdn,
            parent_fqdn=self.parent_fqdn,
            cert_type=self.cert_type,
            valid_until=self.valid_until,
            serial=self.serial,
            not_after=self.not_after,
            key_type=self.key_type,
            fingerprint=self.fingerprint,
            created_at=created_at,
            acm_certificate_arn=self.acm_certificate_arn,
        )


@dataclass(frozen=True)
class CertificateRenewed(CertificateCreated):
    """A new generation of a certificate: the inventory item moves to it (never back)."""

    generation: int = 2
    previous_serial: str = ""
    detail_type: ClassVar[str] = RENEWED_DETAIL_TYPE

    @classmethod
    def from_record(cls, record: CertificateRecord) -> CertificateRenewed:
        created = CertificateCreated.from_record(record)
        return cls(
            **{field.name: getattr(created, field.name) for field in fields(created)},
            generation=record.generation,
            previous_serial=record.previous_serial or "",
        )

    def to_detail(self) -> dict[str, Any]:
        return {
            **super().to_detail(),
            "Generation": self.generation,
            "PreviousSerial": self.previous_serial,
        }

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> CertificateRenewed:
        created = CertificateCreated.from_detail(detail)
        return cls(
            **{field.name: getattr(created, field.name) for field in fields(created)},
            generation=int(detail["Generation"]),
            previous_serial=str(detail["PreviousSerial"]),
        )

    def to_inventory_item(self, created_at: str) -> InventoryItem:
        return replace(super().to_inventory_item(created_at), generation=self.generation)


@dataclass(frozen=True)
class CertificateRevoked:
    fqdn: str
    parent_fqdn: str
    serial: str
    reason: str
    revoked_at: str
    cert_type: str = ""
    fingerprints: tuple[str, ...] = ()
    """The revoked generations' SHA-256 fingerprints: AWS IoT's IDs of those certificates."""
    generation_only: bool = False
    """One generation alone (superseded by a renewal): the certificate itself stays valid."""
    detail_type: ClassVar[str] = REVOKED_DETAIL_TYPE

    @classmethod
    def from_revocation(
        cls, revocation: RevocationRecord, revoked: Sequence[CertificateRecord] = ()
    ) -> CertificateRevoked:
        return cls(
            fqdn=revocation.fqdn,
            parent_fqdn=revocation.issuer_fqdn,
            serial=revocation.serial,
            reason=revocation.reason,
            revoked_at=iso_utc(revocation.revoked_at),
            cert_type=revoked[0].cert_type.value if revoked else "",
            fingerprints=tuple(record.fingerprint_sha256 for record in revoked),
            generation_only=revocation.generation_only,
        )

    def to_detail(self) -> dict[str, Any]:
        return {
            "FQDN": self.fqdn,
            "ParentFQDN": self.parent_fqdn,
            "Serial": self.serial,
            "Reason": self.reason,
            "RevokedAt": self.revoked_at,
            "Type": self.cert_type,
            "Fingerprints": list(self.fingerprints),
            "GenerationOnly": self.generation_only,
        }

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> CertificateRevoked:
        return cls(
            fqdn=str(detail["FQDN"]),
            parent_fqdn=str(detail["ParentFQDN"]),
            serial=str(detail["Serial"]),
            reason=str(detail["Reason"]),
            revoked_at=str(detail["RevokedAt"]),
            cert_type=str(detail.get("Type", "")),  # absent from events sent before it was added
            fingerprints=tuple(str(value) for value in detail.get("Fingerprints", [])),
            generation_only=detail.get("GenerationOnly") is True,
        )


@dataclass(frozen=True)
class RevocationCascade:
    """The rest of a CA revocation's walk down to AWS IoT, when one invocation of the event
    handler could not finish it (chalicelib.cascade): where to go on."""

    fqdn: str  # the revoked CA
    cert_type: str  # its type (the cascade handler's rule matches CA types only)
    cursor: dict[str, Any]
    detail_type: ClassVar[str] = CASCADE_DETAIL_TYPE

    def to_detail(self) -> dict[str, Any]:
        return {"FQDN": self.fqdn, "Type": self.cert_type, "Cursor": self.cursor}

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> RevocationCascade:
        cursor = detail["Cursor"]
        if not isinstance(cursor, dict):
            raise ValueError("Cursor must be an object")
        return cls(fqdn=str(detail["FQDN"]), cert_type=str(detail["Type"]), cursor=cursor)


@dataclass(frozen=True)
class CertificateExpiring:
    """An active certificate whose end is near (the expiry scan's notice, at most one a day per
    certificate): what it is, who issued it, when it ends and the whole days it has left."""

    fqdn: str
    cert_type: str
    parent_fqdn: str
    serial: str
    not_after: str
    days_left: int
    detail_type: ClassVar[str] = EXPIRING_DETAIL_TYPE

    def to_detail(self) -> dict[str, Any]:
        return {
            "FQDN": self.fqdn,
            "Type": self.cert_type,
            "ParentFQDN": self.parent_fqdn,
            "Serial": self.serial,
            "NotAfter": self.not_after,
            "DaysLeft": self.days_left,
        }


@dataclass(frozen=True)
class CertificateDeleted:
    """A revoked certificate deleted, with (`deleted` > 1) what its CA issued below it: the
    inventory drops its item; the cascade handler removes from AWS IoT the CAs `ca_ids` (every
    generation of each deleted CA) with what is registered under them, and the certificates
    `certificate_ids` (a deleted device's generations). The rest of a removal that one
    invocation could not finish goes on in a new `deleted` event with what is left."""

    fqdn: str
    parent_fqdn: str
    cert_type: str
    deleted: int
    ca_ids: tuple[str, ...] = ()
    certificate_ids: tuple[str, ...] = ()
    detail_type: ClassVar[str] = DELETED_DETAIL_TYPE

    def to_detail(self) -> dict[str, Any]:
        return {
            "FQDN": self.fqdn,
            "ParentFQDN": self.parent_fqdn,
            "Type": self.cert_type,
            "Deleted": self.deleted,
            "IotCaIds": list(self.ca_ids),
            "IotCertificateIds": list(self.certificate_ids),
        }

    @classmethod
    def from_detail(cls, detail: dict[str, Any]) -> CertificateDeleted:
        return cls(
            fqdn=str(detail["FQDN"]),
            parent_fqdn=str(detail["ParentFQDN"]),
            cert_type=str(detail["Type"]),
            deleted=int(detail["Deleted"]),
            ca_ids=tuple(str(value) for value in detail.get("IotCaIds", [])),
            certificate_ids=tuple(str(value) for value in detail.get("IotCertificateIds", [])),
        )


class CertificateEvent(Protocol):
    """What a publisher needs of an event: its detail type, detail and certificate."""

    @property
    def fqdn(self) -> str: ...

    @property
    def detail_type(self) -> str: ...

    def to_detail(self) -> dict[str, Any]: ...


Announce = Callable[[Sequence[CertificateEvent]], None]
"""How a use case hands its events on (the service's publisher, failures logged)."""

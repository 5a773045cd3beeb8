"""The `created` event, the EventPublisher port and its in-process adapter.

Locally, events are delivered synchronously to the same inventory handler that Lambda runs for
the EventBridge rule, wrapped in the same envelope EventBridge uses, so both paths share one
handler and one event shape.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from chalicelib.model import CertificateRecord, CertType, InventoryItem, iso_utc

EVENT_SOURCE = "certificates"
CREATED_DETAIL_TYPE = "created"
CREATED_EVENT_PATTERN = {"source": [EVENT_SOURCE], "detail-type": [CREATED_DETAIL_TYPE]}


class EventDeliveryError(Exception):
    """An event could not be delivered after retries; the certificate itself is stored."""


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

    def to_detail(self) -> dict[str, str]:
        """The event detail; `AcmCertificateArn` only for server certificates imported to ACM."""
        detail = {
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


class EventPublisher(Protocol):
    def publish_created(self, event: CertificateCreated) -> None:
        """Deliver the event; EventDeliveryError when it could not be delivered."""


def eventbridge_envelope(event: CertificateCreated) -> dict[str, Any]:
    """The event as EventBridge hands it to a Lambda target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": CREATED_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": "000000000000",
        "time": iso_utc(datetime.now(UTC)),
        "region": "local",
        "resources": [],
        "detail": event.to_detail(),
    }


class InProcessPublisher:
    """Calls `deliver(envelope)` synchronously: locally, the Lambda inventory handler itself."""

    def __init__(self, deliver: Callable[[dict[str, Any]], object]) -> None:
        self._deliver = deliver

    def publish_created(self, event: CertificateCreated) -> None:
        try:
            self._deliver(eventbridge_envelope(event))
        except Exception as err:
            raise EventDeliveryError(f"inventory handler failed for {event.fqdn}: {err}") from err


class EventBridgePublisher:
    """PutEvents on the custom bus; failed entries are retried with backoff, then reported."""

    def __init__(
        self,
        client: Any,
        bus_name: str,
        attempts: int = 3,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._bus_name = bus_name
        self._attempts = attempts
        self._backoff_seconds = backoff_seconds
        self._sleep = sleep

    def publish_created(self, event: CertificateCreated) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        entry = {
            "Source": EVENT_SOURCE,
            "DetailType": CREATED_DETAIL_TYPE,
            "Detail": json.dumps(event.to_detail()),
            "EventBusName": self._bus_name,
        }
        failure = "no attempt made"
        last_error: Exception | None = None
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._backoff_seconds * 2 ** (attempt - 1))
            try:
                response = self._client.put_events(Entries=[entry])
            except (BotoCoreError, ClientError) as err:
                failure, last_error = str(err), err
                continue
            if response.get("FailedEntryCount", 0) == 0:
                return
            failed = response["Entries"][0]
            failure = f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
        raise EventDeliveryError(
            f"created event for {event.fqdn} not delivered after {self._attempts} attempts: "
            f"{failure}"
        ) from last_error


class RecordingPublisher:
    """For unit tests: keeps the events it was given."""

    def __init__(self) -> None:
        self.events: list[CertificateCreated] = []

    def publish_created(self, event: CertificateCreated) -> None:
        self.events.append(event)

"""EventPublisher port: where the service announces what it stored (EventBridge on AWS; locally,
the inventory keeper in process)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chalicelib.events import CertificateEvent


class EventDeliveryError(Exception):
    """An event could not be delivered after retries; the certificate itself is stored."""


class EventPublisher(Protocol):
    def publish(self, events: Sequence[CertificateEvent]) -> None:
        """Deliver the events; EventDeliveryError naming those that could not be delivered."""


def undelivered(events: Sequence[CertificateEvent], failure: str) -> EventDeliveryError:
    names = ", ".join(f"{event.detail_type} {event.fqdn}" for event in events[:10])
    more = f" and {len(events) - 10} more" if len(events) > 10 else ""
    return EventDeliveryError(f"events not delivered: {names}{more}: {failure}")

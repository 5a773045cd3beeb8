"""Events on the local backend: handed to the inventory keeper in process."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chalicelib.events import CertificateEvent
from chalicelib.ports.publisher import undelivered


class InProcessPublisher:
    """Hands the events to `deliver` synchronously: locally, the inventory keeper itself (the
    use case the Lambda handler runs once it has parsed EventBridge's envelope)."""

    def __init__(self, deliver: Callable[[Sequence[CertificateEvent]], object]) -> None:
        self._deliver = deliver

    def publish(self, events: Sequence[CertificateEvent]) -> None:
        if not events:
            return
        try:
            self._deliver(events)
        except Exception as err:  # the inventory's failure, reported with the FQDNs
            raise undelivered(events, f"inventory handler failed: {err}") from err

"""Events on AWS: PutEvents on the stage's EventBridge bus."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from chalicelib.adapters.aws.errors import aws_errors
from chalicelib.events import EVENT_SOURCE, CertificateEvent
from chalicelib.ports.publisher import undelivered


class EventBridgePublisher:
    """PutEvents on the custom bus, ten entries a call; failed entries are retried with
    backoff, then reported."""

    BATCH = 10  # PutEvents takes at most ten entries

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

    def publish(self, events: Sequence[CertificateEvent]) -> None:
        failed: list[CertificateEvent] = []
        last_error: Exception | None = None
        failure = ""
        for start in range(0, len(events), self.BATCH):
            pending, failure, error = self._put_with_retries(
                list(events[start : start + self.BATCH])
            )
            failed += pending
            last_error = error or last_error
        if failed:
            raise undelivered(failed, f"after {self._attempts} attempts: {failure}") from last_error

    def _entry(self, event: CertificateEvent) -> dict[str, str]:
        return {
            "Source": EVENT_SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.to_detail()),
            "EventBusName": self._bus_name,
        }

    def _put_with_retries(
        self, pending: list[CertificateEvent]
    ) -> tuple[list[CertificateEvent], str, Exception | None]:
        """(events still undelivered, last failure, last exception) after every attempt."""
        failure, last_error = "", None
        for attempt in range(self._attempts):
            if attempt:
                self._sleep(self._backoff_seconds * 2 ** (attempt - 1))
            try:
                response = self._client.put_events(Entries=[self._entry(e) for e in pending])
            except aws_errors() as err:
                failure, last_error = str(err), err
                continue
            results = response.get("Entries", [])
            retry = [e for e, r in zip(pending, results, strict=False) if r.get("ErrorCode")]
            if response.get("FailedEntryCount", 0) == 0 or not retry:
                return [], failure, None
            failed = next(r for r in results if r.get("ErrorCode"))
            failure = f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
            pending = retry
        return pending, failure, last_error

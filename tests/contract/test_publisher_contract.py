"""The EventPublisher port: one contract over every adapter, then what each adapter adds.

Every adapter is paired with a way to read back what it delivered, as CertificateCreated events;
an EventBridgePublisher (on moto, read back through an SQS target) joins the same list later.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from chalicelib.events import (
    CertificateCreated,
    EventDeliveryError,
    EventPublisher,
    InProcessPublisher,
    RecordingPublisher,
)
from chalicelib.model import CertType

DETAIL_KEYS = {
    "FQDN",
    "Type",
    "ParentFQDN",
    "ValidUntil",
    "Serial",
    "NotAfter",
    "KeyType",
    "Fingerprint",
}
ENVELOPE_KEYS = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}


def make_event(
    fqdn: str = "3f2b8c1e-9d4a-4e7b-8c21-5a6f0e9d1b47.cell1.devices.example.com", **overrides: Any
) -> CertificateCreated:
    fields: dict[str, Any] = {
        "fqdn": fqdn,
        "cert_type": CertType.CLIENT,
        "parent_fqdn": "cell1.devices.example.com",
        "valid_until": "2027-01-01",
        "serial": "5e1f0c2a9b7d4e3f8a6c1b0d2e4f6a8c9b7d5e3f",
        "not_after": "2027-01-01T00:00:00Z",
        "key_type": "EC_P256",
        "fingerprint": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    }
    fields.update(overrides)
    return CertificateCreated(**fields)


def make_root_event() -> CertificateCreated:
    return make_event(
        "example.com",
        cert_type=CertType.ROOT,
        parent_fqdn="Root",
        valid_until="2035-12-30",
        not_after="2035-12-30T00:00:00Z",
        key_type="RSA_4096",
    )


PublisherUnderTest = tuple[EventPublisher, Callable[[], list[CertificateCreated]]]


def _in_process(request: pytest.FixtureRequest) -> PublisherUnderTest:
    envelopes: list[dict[str, Any]] = []
    publisher = InProcessPublisher(envelopes.append)
    return publisher, lambda: [CertificateCreated.from_detail(e["detail"]) for e in envelopes]


def _recording(request: pytest.FixtureRequest) -> PublisherUnderTest:
    publisher = RecordingPublisher()
    return publisher, lambda: list(publisher.events)


PUBLISHER_FACTORIES: list[tuple[str, Callable[[pytest.FixtureRequest], PublisherUnderTest]]] = [
    ("in-process", _in_process),
    ("recording", _recording),
]


@pytest.fixture(
    params=[factory for _, factory in PUBLISHER_FACTORIES],
    ids=[name for name, _ in PUBLISHER_FACTORIES],
)
def publisher_under_test(request: pytest.FixtureRequest) -> PublisherUnderTest:
    return request.param(request)


class TestEventPublisherContract:
    def test_published_events_are_delivered_unchanged_and_in_order(
        self, publisher_under_test: PublisherUnderTest
    ) -> None:
        publisher, delivered = publisher_under_test
        events = [make_root_event(), make_event(), make_event(f"other.{make_event().parent_fqdn}")]

        for event in events:
            publisher.publish_created(event)

        assert delivered() == events

    def test_nothing_is_delivered_before_publishing(
        self, publisher_under_test: PublisherUnderTest
    ) -> None:
        _, delivered = publisher_under_test

        assert delivered() == []


class TestInProcessPublisher:
    def test_delivers_an_eventbridge_shaped_envelope(self) -> None:
        envelopes: list[dict[str, Any]] = []
        event = make_event()

        InProcessPublisher(envelopes.append).publish_created(event)

        (envelope,) = envelopes
        assert set(envelope) == ENVELOPE_KEYS
        assert envelope["source"] == "certificates"
        assert envelope["detail-type"] == "created"
        assert envelope["version"] == "0"
        assert envelope["resources"] == []
        assert isinstance(envelope["account"], str)
        assert isinstance(envelope["region"], str)
        assert uuid.UUID(envelope["id"]).version == 4
        assert envelope["time"].endswith("Z")
        assert (
            datetime.fromisoformat(envelope["time"].replace("Z", "+00:00")).utcoffset() is not None
        )
        assert set(envelope["detail"]) == DETAIL_KEYS
        assert envelope["detail"] == {
            "FQDN": event.fqdn,
            "Type": "Client",
            "ParentFQDN": "cell1.devices.example.com",
            "ValidUntil": "2027-01-01",
            "Serial": event.serial,
            "NotAfter": "2027-01-01T00:00:00Z",
            "KeyType": "EC_P256",
            "Fingerprint": event.fingerprint,
        }

    def test_each_envelope_has_its_own_id(self) -> None:
        envelopes: list[dict[str, Any]] = []
        publisher = InProcessPublisher(envelopes.append)

        publisher.publish_created(make_event())
        publisher.publish_created(make_event())

        assert envelopes[0]["id"] != envelopes[1]["id"]

    def test_a_failing_deliver_is_wrapped_in_event_delivery_error(self) -> None:
        failure = RuntimeError("inventory table is unavailable")

        def deliver(envelope: dict[str, Any]) -> None:
            raise failure

        with pytest.raises(EventDeliveryError) as raised:
            InProcessPublisher(deliver).publish_created(make_root_event())

        assert raised.value.__cause__ is failure
        assert "example.com" in str(raised.value)


class TestRecordingPublisher:
    def test_keeps_the_events_it_was_given(self) -> None:
        publisher = RecordingPublisher()
        events = [make_root_event(), make_event()]

        for event in events:
            publisher.publish_created(event)

        assert publisher.events == events
        assert publisher.events[0] is events[0]


class TestCertificateCreatedDetail:
    @pytest.mark.parametrize("event", [make_event(), make_root_event()], ids=["device", "root"])
    def test_to_detail_from_detail_round_trip(self, event: CertificateCreated) -> None:
        detail = event.to_detail()

        assert set(detail) == DETAIL_KEYS
        assert all(isinstance(value, str) for value in detail.values())
        assert CertificateCreated.from_detail(detail) == event

    def test_root_detail_names_root_as_parent(self) -> None:
        detail = make_root_event().to_detail()

        assert detail["ParentFQDN"] == "Root"
        assert detail["Type"] == "Root"

    @pytest.mark.parametrize("missing", sorted(DETAIL_KEYS))
    def test_from_detail_without_a_key_raises_key_error(self, missing: str) -> None:
        detail = make_event().to_detail()
        del detail[missing]

        with pytest.raises(KeyError, match=missing):
            CertificateCreated.from_detail(detail)

    def test_from_detail_with_an_unknown_type_raises_value_error(self) -> None:
        detail = {**make_event().to_detail(), "Type": "Toaster"}

        with pytest.raises(ValueError):
            CertificateCreated.from_detail(detail)

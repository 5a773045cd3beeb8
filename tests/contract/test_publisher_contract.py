"""The EventPublisher port: one contract over every adapter, then what each adapter adds.

Every adapter is paired with a way to read back what it delivered, as CertificateCreated events;
the EventBridgePublisher runs on moto and is read back through the SQS queue its rule targets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.aws.events import EventBridgePublisher
from chalicelib.adapters.local.events import InProcessPublisher
from chalicelib.errors import StorageError
from chalicelib.events import CertificateCreated
from chalicelib.model import CertType
from chalicelib.ports.publisher import EventDeliveryError, EventPublisher
from tests.backends import AwsResources, adapter_params
from tests.fakes import RecordingPublisher

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
    delivered: list[CertificateCreated] = []
    publisher = InProcessPublisher(delivered.extend)
    return publisher, lambda: list(delivered)


def _recording(request: pytest.FixtureRequest) -> PublisherUnderTest:
    publisher = RecordingPublisher()
    return publisher, lambda: list(publisher.events)


def receive_envelopes(aws: AwsResources) -> list[dict[str, Any]]:
    """Drain the queue the `created` rule targets: the envelopes EventBridge delivered, in order."""
    sqs = aws.session.client("sqs")
    envelopes: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return envelopes
        for message in messages:
            envelopes.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])


def never_sleep(seconds: float) -> None:
    raise AssertionError(f"moto accepted the event, yet the publisher backed off {seconds}s")


def _eventbridge(request: pytest.FixtureRequest) -> PublisherUnderTest:
    aws: AwsResources = request.getfixturevalue("aws_resources")
    publisher = EventBridgePublisher(aws.session.client("events"), aws.bus, sleep=never_sleep)
    envelopes: list[dict[str, Any]] = []

    def delivered() -> list[CertificateCreated]:
        envelopes.extend(receive_envelopes(aws))
        return [CertificateCreated.from_detail(envelope["detail"]) for envelope in envelopes]

    return publisher, delivered


PUBLISHER_FACTORIES: list[tuple[str, Callable[[pytest.FixtureRequest], PublisherUnderTest]]] = [
    ("in-process", _in_process),
    ("recording", _recording),
    ("eventbridge", _eventbridge),
]


@pytest.fixture(params=adapter_params(PUBLISHER_FACTORIES))
def publisher_under_test(request: pytest.FixtureRequest) -> PublisherUnderTest:
    return request.param(request)


class TestEventPublisherContract:
    def test_published_events_are_delivered_unchanged_and_in_order(
        self, publisher_under_test: PublisherUnderTest
    ) -> None:
        publisher, delivered = publisher_under_test
        events = [make_root_event(), make_event(), make_event(f"other.{make_event().parent_fqdn}")]

        for event in events:
            publisher.publish([event])

        assert delivered() == events

    def test_nothing_is_delivered_before_publishing(
        self, publisher_under_test: PublisherUnderTest
    ) -> None:
        _, delivered = publisher_under_test

        assert delivered() == []


class TestInProcessPublisher:
    """Locally the events go to the inventory keeper as they are: no envelope to build and
    parse again in the same process (the EventBridge envelope is tested on moto below)."""

    def test_one_publish_is_one_delivery_of_the_same_events(self) -> None:
        deliveries: list[tuple[CertificateCreated, ...]] = []
        events = [make_event(), make_event(f"two.{make_event().parent_fqdn}"), make_root_event()]

        InProcessPublisher(lambda batch: deliveries.append(tuple(batch))).publish(events)

        assert len(deliveries) == 1
        assert all(
            delivered is event for delivered, event in zip(deliveries[0], events, strict=True)
        )

    def test_a_failing_deliver_is_wrapped_in_event_delivery_error(self) -> None:
        failure = StorageError("could not commit the inventory: disk I/O error")

        def deliver(events: object) -> None:
            raise failure

        events = [make_event(), make_root_event()]
        with pytest.raises(EventDeliveryError) as raised:
            InProcessPublisher(deliver).publish(events)

        assert raised.value.__cause__ is failure
        for event in events:
            assert event.fqdn in str(raised.value)

    def test_publishing_nothing_delivers_nothing(self) -> None:
        deliveries: list[object] = []

        InProcessPublisher(deliveries.append).publish([])

        assert deliveries == []


class TestRecordingPublisher:
    def test_keeps_the_events_it_was_given(self) -> None:
        publisher = RecordingPublisher()
        events = [make_root_event(), make_event()]

        for event in events:
            publisher.publish([event])

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


@pytest.fixture
def eventbridge(aws_resources: AwsResources) -> EventBridgePublisher:
    return EventBridgePublisher(aws_resources.session.client("events"), aws_resources.bus)


class TestEventBridgePublisher:
    """On moto: what reaches the rule's target. Under Stubber: the faults moto cannot produce."""

    def test_the_rule_target_receives_an_eventbridge_envelope(
        self, eventbridge: EventBridgePublisher, aws_resources: AwsResources
    ) -> None:
        event = make_event()

        eventbridge.publish([event])

        (envelope,) = receive_envelopes(aws_resources)
        # moto's SQS target template leaves out `account`, which EventBridge sends.
        assert ENVELOPE_KEYS - {"account"} <= set(envelope) <= ENVELOPE_KEYS
        assert envelope["source"] == "certificates"
        assert envelope["detail-type"] == "created"
        assert set(envelope["detail"]) == DETAIL_KEYS
        assert envelope["detail"] == event.to_detail()

    def test_a_server_event_carries_its_acm_arn(
        self, eventbridge: EventBridgePublisher, aws_resources: AwsResources
    ) -> None:
        arn = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
        event = make_event(
            "mqtt.example.com",
            cert_type=CertType.SERVER,
            parent_fqdn="example.com",
            acm_certificate_arn=arn,
        )

        eventbridge.publish([event])

        (envelope,) = receive_envelopes(aws_resources)
        assert envelope["detail"]["AcmCertificateArn"] == arn
        assert CertificateCreated.from_detail(envelope["detail"]) == event

    def test_events_reach_the_rule_only_on_the_configured_bus(
        self, aws_resources: AwsResources
    ) -> None:
        """Negative control for the read-back: the rule lives on the custom bus, not `default`."""
        client = aws_resources.session.client("events")

        EventBridgePublisher(client, "default").publish([make_event()])
        assert receive_envelopes(aws_resources) == []

        EventBridgePublisher(client, aws_resources.bus).publish([make_event()])
        assert len(receive_envelopes(aws_resources)) == 1


FAILED_ENTRY = {
    "FailedEntryCount": 1,
    "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again later"}],
}
ACCEPTED_ENTRY = {"FailedEntryCount": 0, "Entries": [{"EventId": "11710aed-b79e-4468-a20b"}]}


class StubbedEventBridge:
    """An events client under Stubber that records every PutEvents entry and every back-off."""

    def __init__(self) -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # fake: Stubber answers before any request
            region_name="us-east-1",
        )
        self.client = session.client("events")
        self.stubber = Stubber(self.client)
        self.sent_entries: list[dict[str, Any]] = []
        self.sleeps: list[float] = []
        self.client.meta.events.register(
            "before-parameter-build.events.PutEvents", self._record_entries
        )

    def _record_entries(self, params: dict[str, Any], **kwargs: Any) -> None:
        (entry,) = params["Entries"]
        self.sent_entries.append(entry)

    def publisher(self, attempts: int = 3, backoff_seconds: float = 0.5) -> EventBridgePublisher:
        return EventBridgePublisher(
            self.client, "iot-certificates-test", attempts, backoff_seconds, self.sleeps.append
        )


@pytest.fixture
def stubbed_eventbridge() -> Iterator[StubbedEventBridge]:
    stubbed = StubbedEventBridge()
    with stubbed.stubber:
        yield stubbed
        stubbed.stubber.assert_no_pending_responses()


class TestEventBridgePublisherRetries:
    def test_a_failed_entry_is_retried_then_delivered(
        self, stubbed_eventbridge: StubbedEventBridge
    ) -> None:
        stubbed_eventbridge.stubber.add_response("put_events", FAILED_ENTRY)
        stubbed_eventbridge.stubber.add_response("put_events", ACCEPTED_ENTRY)
        event = make_event()

        stubbed_eventbridge.publisher(backoff_seconds=0.5).publish([event])

        assert len(stubbed_eventbridge.sent_entries) == 2
        assert stubbed_eventbridge.sleeps == [0.5]
        for entry in stubbed_eventbridge.sent_entries:
            assert entry["Source"] == "certificates"
            assert entry["DetailType"] == "created"
            assert entry["EventBusName"] == "iot-certificates-test"
            assert json.loads(entry["Detail"]) == event.to_detail()

    def test_the_back_off_grows_between_attempts(
        self, stubbed_eventbridge: StubbedEventBridge
    ) -> None:
        for _ in range(3):
            stubbed_eventbridge.stubber.add_response("put_events", FAILED_ENTRY)
        stubbed_eventbridge.stubber.add_response("put_events", ACCEPTED_ENTRY)

        stubbed_eventbridge.publisher(attempts=4, backoff_seconds=0.25).publish([make_event()])

        assert len(stubbed_eventbridge.sent_entries) == 4
        assert stubbed_eventbridge.sleeps == [0.25, 0.5, 1.0]

    def test_three_failed_entries_raise_event_delivery_error_naming_the_fqdn(
        self, stubbed_eventbridge: StubbedEventBridge
    ) -> None:
        for _ in range(3):
            stubbed_eventbridge.stubber.add_response("put_events", FAILED_ENTRY)
        event = make_event()

        with pytest.raises(EventDeliveryError) as raised:
            stubbed_eventbridge.publisher(attempts=3, backoff_seconds=0.5).publish([event])

        assert event.fqdn in str(raised.value)
        assert "InternalFailure" in str(raised.value)
        assert len(stubbed_eventbridge.sent_entries) == 3
        assert stubbed_eventbridge.sleeps == [0.5, 1.0]  # no back-off after the last attempt

    def test_a_client_error_is_retried_like_a_failed_entry(
        self, stubbed_eventbridge: StubbedEventBridge
    ) -> None:
        stubbed_eventbridge.stubber.add_client_error(
            "put_events", service_error_code="ThrottlingException", http_status_code=400
        )
        stubbed_eventbridge.stubber.add_response("put_events", ACCEPTED_ENTRY)

        stubbed_eventbridge.publisher(backoff_seconds=0.5).publish([make_event()])

        assert len(stubbed_eventbridge.sent_entries) == 2
        assert stubbed_eventbridge.sleeps == [0.5]

    def test_a_client_error_on_every_attempt_raises_event_delivery_error(
        self, stubbed_eventbridge: StubbedEventBridge
    ) -> None:
        for _ in range(3):
            stubbed_eventbridge.stubber.add_client_error(
                "put_events",
                service_error_code="ThrottlingException",
                service_message="Rate exceeded",
                http_status_code=400,
            )
        event = make_root_event()

        with pytest.raises(EventDeliveryError) as raised:
            stubbed_eventbridge.publisher(attempts=3).publish([event])

        assert "example.com" in str(raised.value)
        assert "ThrottlingException" in str(raised.value)
        assert len(stubbed_eventbridge.sent_entries) == 3
        assert len(stubbed_eventbridge.sleeps) == 2

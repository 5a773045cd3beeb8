"""The AWS backend end to end under moto: real event routing, lost events, call budget, ACM."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from chalice.test import Client

from chalicelib import wiring
from chalicelib.adapters.aws.events import EventBridgePublisher
from chalicelib.config import load_settings
from chalicelib.events import INVENTORY_EVENT_PATTERN
from tests.backends import MotoBackend
from tests.helpers import ApiClient, create_hierarchy, verify_client

CELL = "cell1.devices.example.com"
aws_only = pytest.mark.parametrize("backend", ["aws"], indirect=True)


@pytest.fixture
def chalice_client(backend: MotoBackend) -> Iterator[Any]:
    from app import app

    with Client(app, stage_name="test") as client:
        yield client


@aws_only
def test_created_events_reach_the_inventory_through_the_bus_rule(
    backend: MotoBackend, chalice_client: Any
) -> None:
    """Issue with event delivery held back, then route what the rule delivered to the handler."""
    undelivered = ApiClient(chalice_client)  # no backend: nothing is handed to the handler yet
    root = undelivered.create("root", fqdn="example.com")
    undelivered.create("intermediate", fqdn="devices.example.com", path_length=1)
    undelivered.create("intermediate", fqdn=CELL)
    devices = [undelivered.create("device", parent_fqdn=CELL) for _ in range(3)]
    assert undelivered.get(f"/certificates?parent={CELL}").body["items"] == []

    envelopes = backend.receive_events()

    assert [envelope["detail"]["FQDN"] for envelope in envelopes] == [
        "example.com", "devices.example.com", CELL, *(device["fqdn"] for device in devices)
    ]  # fmt: skip
    for envelope in envelopes:
        assert envelope["source"] in INVENTORY_EVENT_PATTERN["source"]
        assert envelope["detail-type"] in INVENTORY_EVENT_PATTERN["detail-type"]
        chalice_client.lambda_.invoke("record_inventory", envelope)
    listed = undelivered.get(f"/certificates?parent={CELL}").body["items"]
    assert sorted(item["fqdn"] for item in listed) == sorted(d["fqdn"] for d in devices)
    assert [item["fqdn"] for item in undelivered.get("/certificates").body["items"]] == [
        "example.com"
    ]
    for device in devices:
        verify_client(device, root["certificate"])


class _CallCounter:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls.append(f"{model.service_model.service_name}.{model.name}")


@pytest.fixture
def counted_api(backend: MotoBackend, chalice_client: Any) -> tuple[ApiClient, _CallCounter]:
    """The service built on a boto3 session whose every API call is recorded.

    Events are left on the queue: the inventory handler is another Lambda, with its own calls.
    """
    counter = _CallCounter()
    session = boto3.session.Session()
    session.events.register("before-call", counter)
    wiring.override_service(wiring.build_service(load_settings(), boto_session=session))
    return ApiClient(chalice_client), counter


def chain_look(levels: int) -> Counter[str]:
    """The issuer's look after its write: for each CA of the chain, its generations and whether
    it is revoked (two listings each, all at once)."""
    return Counter({"s3.ListObjectsV2": 2 * levels})


@aws_only
def test_a_warm_process_issues_within_the_aws_call_budget(
    counted_api: tuple[ApiClient, _CallCounter],
) -> None:
    """docs/design.md, AWS calls: the CA's current generation before signing, the signature (in
    KMS, the CAs' key store by default), the write, the look at the chain after it (a cell is
    three CAs deep), the event; a server's ACM import, and the look at its own name."""
    api, counter = counted_api
    create_hierarchy(api)
    api.create("device", parent_fqdn=CELL)  # warms the CA cache
    api.create("server", fqdn="warm.servers.example.com")
    before_signing = Counter({"s3.ListObjectsV2": 1, "kms.Sign": 1})
    written = Counter({"s3.PutObject": 1, "events.PutEvents": 1})

    counter.calls.clear()
    api.create("device", parent_fqdn=CELL)
    assert Counter(counter.calls) == before_signing + written + chain_look(3)
    assert counter.calls.index("s3.PutObject") < len(counter.calls) - 7  # the look comes after

    counter.calls.clear()
    api.create("server", fqdn="mqtt.servers.example.com")
    imported = Counter({"acm.ImportCertificate": 1})
    # and, at once with the chain, its own name: a deleted certificate's stays revoked
    own_name = Counter({"s3.ListObjectsV2": 2})
    assert Counter(counter.calls) == before_signing + written + chain_look(2) + own_name + imported


@aws_only
def test_a_warm_process_renews_within_the_stated_aws_call_budget(
    counted_api: tuple[ApiClient, _CallCounter],
) -> None:
    """docs/design.md, AWS calls: reading the current generation (a listing and a read) and
    whether the certificate is revoked come on top of an issuance's calls; the look after the
    write asks about the certificate itself with its chain."""
    api, counter = counted_api
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL)
    server = api.create("server", fqdn="mqtt.servers.example.com")
    read_current = Counter({"s3.ListObjectsV2": 3, "s3.GetObject": 1})
    own_state = Counter({"s3.ListObjectsV2": 2})
    written = Counter({"s3.PutObject": 1, "events.PutEvents": 1, "kms.Sign": 1})

    counter.calls.clear()
    assert api.post(f"/certificates/{device['fqdn']}/renew", {}).status_code == 201
    assert Counter(counter.calls) == read_current + written + chain_look(3) + own_state

    counter.calls.clear()  # the first renewal finds the ARN where the `created` event put it
    assert api.post(f"/certificates/{server['fqdn']}/renew", {}).status_code == 201
    assert "dynamodb.GetItem" in counter.calls

    counter.calls.clear()  # later ones in the current generation's document
    assert api.post(f"/certificates/{server['fqdn']}/renew", {}).status_code == 201
    imported = Counter({"acm.ImportCertificate": 1})
    assert Counter(counter.calls) == read_current + written + chain_look(2) + own_state + imported


@aws_only
def test_reissuing_a_server_certificate_never_creates_a_second_acm_certificate(
    backend_api: ApiClient, backend: MotoBackend
) -> None:
    create_hierarchy(backend_api)
    first = backend_api.create("server", fqdn="mqtt.servers.example.com")
    for _ in range(3):
        again = backend_api.post("/certificates/server", {"fqdn": "mqtt.servers.example.com"})
        assert again.status_code == 409

    summaries = backend.acm.list_certificates()["CertificateSummaryList"]
    assert [summary["CertificateArn"] for summary in summaries] == [first["acm_certificate_arn"]]
    imported = backend.acm.get_certificate(CertificateArn=first["acm_certificate_arn"])
    assert imported["Certificate"].strip() == first["certificate"].strip()
    fetched = backend_api.get("/certificates/mqtt.servers.example.com").body
    assert fetched["acm_certificate_arn"] == first["acm_certificate_arn"]
    assert fetched["serial"] == first["serial"]


def _failing_put_events(publisher_client: Any, failures: int) -> Stubber:
    stubber = Stubber(publisher_client)
    failed = {
        "FailedEntryCount": 1,
        "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}],
    }
    for _ in range(failures):
        stubber.add_response("put_events", failed)
    return stubber


@aws_only
def test_lost_events_leave_the_certificate_retrievable_and_reconcile_restores_them(
    backend: MotoBackend, chalice_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    api = ApiClient(chalice_client, backend)
    create_hierarchy(api)
    service = wiring.certificate_service()
    events_client = boto3.session.Session().client("events")
    service._publisher = EventBridgePublisher(  # a failing bus client
        events_client, load_settings().event_bus_name, sleep=lambda seconds: None
    )
    with _failing_put_events(events_client, failures=3) as stubber:
        device = api.create("device", parent_fqdn=CELL)
        stubber.assert_no_pending_responses()  # three attempts were made

    assert device["fqdn"] in caplog.text and "not delivered" in caplog.text
    assert api.get(f"/certificates/{device['fqdn']}").body["serial"] == device["serial"]
    assert api.get(f"/certificates?parent={CELL}").body["items"] == []

    assert service.reconcile_inventory() == 1
    listed = api.get(f"/certificates?parent={CELL}").body["items"]
    assert [(item["fqdn"], item["serial"]) for item in listed] == [
        (device["fqdn"], device["serial"])
    ]
    assert service.reconcile_inventory() == 0


@aws_only
def test_a_failed_put_events_entry_is_retried(backend: MotoBackend, chalice_client: Any) -> None:
    api = ApiClient(chalice_client, backend)
    create_hierarchy(api)
    service = wiring.certificate_service()
    events_client = boto3.session.Session().client("events")
    waits: list[float] = []
    service._publisher = EventBridgePublisher(  # a flaky bus client
        events_client, load_settings().event_bus_name, sleep=waits.append
    )
    with _failing_put_events(events_client, failures=1) as stubber:
        stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]})
        api.create("device", parent_fqdn=CELL)
        stubber.assert_no_pending_responses()
    assert len(waits) == 1 and waits[0] > 0


@aws_only
def test_stored_objects_are_encrypted_with_the_kms_key(backend: MotoBackend) -> None:
    from app import app

    with Client(app, stage_name="test") as client:
        ApiClient(client, backend).create("root", fqdn="example.com", key_store="file")
    head = backend.s3.head_object(Bucket=backend.bucket, Key="certificates/example.com.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    settings = load_settings()
    assert settings.kms_key_id and settings.kms_key_id in head["SSEKMSKeyId"]
    document = json.loads(backend.object_bytes("example.com"))
    assert document["type"] == "Root" and "BEGIN PRIVATE KEY" in document["private_key"]


@aws_only
def test_a_server_certificates_acm_arn_survives_its_lost_created_event(
    backend: MotoBackend, chalice_client: Any
) -> None:
    """The ARN travels only in the `created` event (the S3 document is written before the
    import): when that event is lost, `make reconcile` finds the certificate in ACM again."""
    delivered = ApiClient(chalice_client, backend)
    create_hierarchy(delivered)
    undelivered = ApiClient(chalice_client)  # events wait in the queue
    server = undelivered.create("server", fqdn="mqtt.servers.example.com")
    lost = backend.receive_events()  # ... and are dropped
    assert [envelope["detail"]["FQDN"] for envelope in lost] == [server["fqdn"]]
    assert server["acm_certificate_arn"]

    before = delivered.get(f"/certificates/{server['fqdn']}").body
    assert before["acm_certificate_arn"] is None  # the stored document has none

    assert wiring.certificate_service().reconcile_inventory() == 1

    after = delivered.get(f"/certificates/{server['fqdn']}").body
    assert after["acm_certificate_arn"] == server["acm_certificate_arn"]
    listed = delivered.get("/certificates?parent=servers.example.com").body["items"]
    assert [item["fqdn"] for item in listed] == [server["fqdn"]]

"""Stages share an AWS account: what each creates there at run time carries its app and stage, and
`make teardown-aws STAGE=...` (devtools/teardown_iot.py) deletes one stage's CAs, device
certificates, things and ACM imports, and nothing of another stage's.

Two stages, alice and bob, deploy into one moto account as two engineers would into one dev
account (one bucket and table here, each stage with its own CAs): each registers a cell CA with
AWS IoT (DEFAULT, JITP), registers devices with things and one without, and imports a server
certificate into ACM, all through the API.

moto (5.2.5) keeps no tags on AWS IoT CAs and has no ListCACertificates: tests/moto_iot.py adds
them, and pages ListCertificatesByCA, which moto does not. What moto cannot show: AWS IoT's
asynchronous detachment (a deletion refused for seconds after it; tried again here with a
refusal made up in the test), its rules on deleting a CA with certificates below it, JITP's
things (moto runs no provisioning template: the template's attributes are unit-tested), and
ACM keeping an import's tags across a re-import (moto drops them).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from chalice.test import Client

from chalicelib import wiring
from chalicelib.config import ConfigurationError, load_settings
from chalicelib.ownership import Ownership
from devtools import teardown_iot
from devtools.aws_resources import IOT_DEVICE_POLICY
from devtools.teardown_iot import Teardown
from tests.backends import MotoBackend, shared_boto_session
from tests.helpers import ApiClient
from tests.moto_iot import with_ca_tags_and_listing

APP = "iot-cert-service"
STAGES = ("alice", "bob")
DEVICES = 3


@dataclass(frozen=True)
class Deployed:
    """What one stage created in AWS."""

    ca_id: str
    ca_arn: str
    device_ids: tuple[str, ...]
    things: tuple[str, ...]
    acm_arn: str
    ca_keys: tuple[str, ...]  # the KMS keys of its CAs (key_store kms, the AWS default)


def device_policy(stage: str) -> str:
    """The stage's AWS IoT device policy, named as Terraform names it."""
    return f"{APP}-{stage}-devices"


def stage_service(stage: str) -> Any:
    """The service as the stage's Lambda functions build it (SERVICE_STAGE=<stage>, and the
    stage's own device policy, which Terraform creates)."""
    boto3.client("iot").create_policy(
        policyName=device_policy(stage), policyDocument=json.dumps(IOT_DEVICE_POLICY)
    )
    settings = dataclasses.replace(
        load_settings(),
        ownership=Ownership(APP, stage),
        iot_device_policy_name=device_policy(stage),
    )
    return wiring.build_service(settings, boto_session=shared_boto_session())


def deploy(api: ApiClient, stage: str) -> Deployed:
    """A root, a cell registered with AWS IoT, devices with things and one without, and a
    server certificate imported into ACM, through the API."""
    cell = f"cell.{stage}.example.com"
    cas = [api.create("root", fqdn=f"{stage}.example.com"), api.create("intermediate", fqdn=cell)]
    registered = api.post(f"/certificates/{cell}/aws-iot/register", {"provisioning": "jitp"})
    assert registered.status_code == 200, registered.body
    bulk = api.create(
        "device", parent_fqdn=cell, count=DEVICES, aws_iot={"register": True, "thing": True}
    )
    lone = api.create("device", parent_fqdn=cell, aws_iot={"register": True, "thing": False})
    outcomes = [item["aws_iot"] for item in bulk["items"]] + [lone["aws_iot"]]
    assert all(outcome["error"] is None for outcome in outcomes), outcomes
    server = api.create("server", fqdn=f"mqtt.{stage}.example.com")
    return Deployed(
        registered.body["ca_certificate_id"],
        registered.body["ca_certificate_arn"],
        tuple(outcome["certificate_id"] for outcome in outcomes),
        tuple(outcome["thing_name"] for outcome in outcomes if outcome["thing_name"]),
        api.get(f"/certificates/{server['fqdn']}").body["acm_certificate_arn"],
        tuple(ca["key_id"] for ca in cas),
    )


@pytest.fixture
def stages(backend: MotoBackend, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Deployed]]:
    """alice and bob, deployed side by side into one moto account."""
    from app import app

    with_ca_tags_and_listing(monkeypatch)
    deployed = {}
    with Client(app, stage_name="test") as client:
        api = ApiClient(client, backend)
        for stage in STAGES:
            wiring.override_service(stage_service(stage))
            deployed[stage] = deploy(api, stage)
    yield deployed


def ca_tags(arn: str) -> dict[str, str]:
    tags = boto3.client("iot").list_tags_for_resource(resourceArn=arn)["tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def acm_tags(arn: str) -> dict[str, str]:
    tags = boto3.client("acm").list_tags_for_certificate(CertificateArn=arn)["Tags"]
    return {tag["Key"]: tag["Value"] for tag in tags}


def status_of(certificate_id: str) -> str | None:
    """A device certificate's status in AWS IoT; None when it is not registered."""
    try:
        described = boto3.client("iot").describe_certificate(certificateId=certificate_id)
    except ClientError as err:
        assert err.response["Error"]["Code"] == "ResourceNotFoundException"
        return None
    return str(described["certificateDescription"]["status"])


def ca_status_of(certificate_id: str) -> str | None:
    try:
        described = boto3.client("iot").describe_ca_certificate(certificateId=certificate_id)
    except ClientError as err:
        assert err.response["Error"]["Code"] == "ResourceNotFoundException"
        return None
    return str(described["certificateDescription"]["status"])


def thing_names() -> set[str]:
    return {thing["thingName"] for thing in boto3.client("iot").list_things()["things"]}


def acm_arns() -> set[str]:
    listed = boto3.client("acm").list_certificates()["CertificateSummaryList"]
    return {summary["CertificateArn"] for summary in listed}


def assert_gone(deployed: Deployed) -> None:
    assert ca_status_of(deployed.ca_id) is None
    assert [status_of(device) for device in deployed.device_ids] == [None] * len(
        deployed.device_ids
    )
    assert not set(deployed.things) & thing_names()
    assert deployed.acm_arn not in acm_arns()
    assert [key_state(key) for key in deployed.ca_keys] == ["PendingDeletion"] * 2
    aliases = boto3.client("kms").list_aliases()["Aliases"]
    assert not [alias for alias in aliases if alias.get("TargetKeyId") in
                {key.rsplit("/", 1)[1] for key in deployed.ca_keys}]  # fmt: skip


def key_state(key_id: str) -> str:
    return str(boto3.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


def assert_whole(deployed: Deployed) -> None:
    """Everything of the stage still there, and still ACTIVE."""
    iot = boto3.client("iot")
    assert ca_status_of(deployed.ca_id) == "ACTIVE"
    assert [status_of(device) for device in deployed.device_ids] == ["ACTIVE"] * len(
        deployed.device_ids
    )
    for thing in deployed.things:
        assert iot.list_thing_principals(thingName=thing)["principals"], thing
    assert deployed.acm_arn in acm_arns()
    assert [key_state(key) for key in deployed.ca_keys] == ["Enabled"] * 2


# Ownership ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_everything_a_stage_creates_in_aws_carries_its_app_and_stage(
    stages: dict[str, Deployed],
) -> None:
    """CA registrations and ACM imports as tags; things, which take none, as attributes."""
    iot = boto3.client("iot")
    for stage, deployed in stages.items():
        owner = {"app": APP, "stage": stage}
        assert ca_tags(deployed.ca_arn) == owner
        assert acm_tags(deployed.acm_arn) == {**owner, "fqdn": f"mqtt.{stage}.example.com"}
        assert len(deployed.things) == DEVICES
        for thing in deployed.things:
            assert iot.describe_thing(thingName=thing)["attributes"] == owner
        registration = iot.describe_ca_certificate(certificateId=deployed.ca_id)
        template = registration["registrationConfig"]["templateBody"]  # JITP's things too
        assert f'"AttributePayload":{{"app":"{APP}","stage":"{stage}"}}' in template


def test_the_stage_comes_from_the_environment_terraform_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SERVICE_APP", raising=False)
    monkeypatch.delenv("SERVICE_STAGE", raising=False)
    assert load_settings().ownership == Ownership(APP, "local")  # not deployed by Terraform

    monkeypatch.setenv("SERVICE_STAGE", "alice")
    assert load_settings().ownership == Ownership(APP, "alice")

    monkeypatch.setenv("SERVICE_STAGE", "Alice Smith")
    with pytest.raises(ConfigurationError, match="SERVICE_STAGE='Alice Smith'"):
        load_settings()


# Teardown -----------------------------------------------------------------------------------

RUN = ["--stage", "alice", "--region", "us-east-1"]
SUMMARY = "stage alice (app iot-cert-service): deleted "


def alice_keys(stages: dict[str, Deployed]) -> list[str]:
    """The IDs of alice's CA keys (as ListAliases names them)."""
    return [key.rsplit("/", 1)[1] for key in stages["alice"].ca_keys]


def recorded(session: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every AWS IoT call the session's clients make, with its parameters."""
    calls: list[tuple[str, dict[str, Any]]] = []
    session.events.register(
        "provide-client-params.iot.*",
        lambda params, model, **_: calls.append((model.name, dict(params))),
    )
    return calls


def refuse(session: Any, service: str, operation: str, code: str, status: int, times: int) -> None:
    """The session's next `times` calls of the operation answered with the error, as AWS would
    answer them (botocore raises its ClientError), without reaching moto."""
    left = [times]

    def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if left[0] == 0:
            return None
        left[0] -= 1
        error = {"Error": {"Code": code, "Message": "refused by the test"}, "ResponseMetadata": {}}
        return AWSResponse("https://aws.test", status, {}, None), error

    session.events.register(f"before-call.{service}.{operation}", answer)


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_a_stage_s_teardown_deletes_all_of_it_and_nothing_of_another(
    stages: dict[str, Deployed], capsys: pytest.CaptureFixture[str]
) -> None:
    """Through `make teardown-aws`'s entry point; a second run finds nothing to do."""
    session = boto3.session.Session()
    calls = recorded(session)

    status = teardown_iot.main(RUN, session=session)

    output = capsys.readouterr().out.splitlines()
    assert status == 0, output
    assert_gone(stages["alice"])
    assert_whole(stages["bob"])
    assert output[-1] == SUMMARY + (
        "1 CA certificates, 4 device certificates, 3 things, 1 ACM certificates, 2 KMS CA keys; "
        "nothing of it is left"
    )
    for key in alice_keys(stages):
        assert any(line.startswith(f"deleted KMS CA key {key}") for line in output), output
    alice = stages["alice"]
    assert output[1] == f"CA certificate {alice.ca_id}: INACTIVE, auto-registration off"
    assert f"deleted CA certificate {alice.ca_id}" in output
    assert f"deleted ACM certificate {alice.acm_arn}" in output
    for thing in alice.things:
        assert f"deleted thing {thing}" in output
    closed = [params for name, params in calls if name == "UpdateCACertificate"]
    assert closed == [
        {"certificateId": alice.ca_id, "newStatus": "INACTIVE",
         "newAutoRegistrationStatus": "DISABLE"}
    ]  # fmt: skip
    touched = {params.get("certificateId") for _, params in calls}
    assert not {stages["bob"].ca_id, *stages["bob"].device_ids} & touched

    again = teardown_iot.main(RUN, session=session)

    output = capsys.readouterr().out.splitlines()
    assert again == 0
    assert output[1:] == [
        SUMMARY + "0 CA certificates, 0 device certificates, 0 things, 0 ACM certificates, "
        "0 KMS CA keys; nothing of it is left"
    ]
    assert_whole(stages["bob"])


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_a_teardown_that_failed_half_way_is_finished_by_the_next(
    stages: dict[str, Deployed],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first run may not delete a certificate, things or the ACM import (as a caller whose
    policy lacks those actions); it deletes the rest, keeps the CA (the next run finds what
    remains through it), names what is left and exits 1. The next run finishes."""
    monkeypatch.setattr(teardown_iot, "RETRY_DELAYS", (0.0,))
    denied = boto3.session.Session()
    refuse(denied, "iot", "DeleteCertificate", "UnauthorizedException", 401, times=1)
    refuse(denied, "iot", "DeleteThing", "UnauthorizedException", 401, times=99)
    refuse(denied, "acm", "DeleteCertificate", "AccessDeniedException", 400, times=1)
    refuse(denied, "kms", "ScheduleKeyDeletion", "AccessDeniedException", 400, times=1)
    alice = stages["alice"]

    status = teardown_iot.main(RUN, session=denied)

    output = capsys.readouterr().out
    assert status == 1
    summary = output.splitlines()[-1]
    assert summary.startswith(SUMMARY + "0 CA certificates, 3 device certificates, 0 things, ")
    assert f"CA certificate {alice.ca_id}: kept" in summary
    assert f"ACM certificate {alice.acm_arn}: " in summary
    assert all(f"thing {thing}: " in summary for thing in alice.things)
    assert "KMS CA key " in summary  # one of the two: the other is scheduled for deletion
    assert ca_status_of(alice.ca_id) == "INACTIVE"
    assert sorted(map(str, map(status_of, alice.device_ids))) == ["INACTIVE"] + ["None"] * 3
    assert_whole(stages["bob"])

    finished = teardown_iot.main(RUN, session=boto3.session.Session())

    output = capsys.readouterr().out
    assert finished == 0, output
    assert output.splitlines()[-1] == SUMMARY + (
        "1 CA certificates, 1 device certificates, 3 things, 1 ACM certificates, 1 KMS CA keys; "
        "nothing of it is left"
    )
    assert_gone(alice)
    assert_whole(stages["bob"])


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_a_deletion_refused_while_a_detachment_propagates_is_tried_again(
    stages: dict[str, Deployed],
) -> None:
    """AWS IoT detaches a thing asynchronously: deleting its certificate or the thing itself
    right after is refused for a while (DeleteConflictException, InvalidRequestException)."""
    session = boto3.session.Session()
    refuse(session, "iot", "DeleteCertificate", "DeleteConflictException", 409, times=2)
    refuse(session, "iot", "DeleteThing", "InvalidRequestException", 400, times=1)
    waited: list[float] = []
    teardown = Teardown(
        *(session.client(name) for name in ("iot", "acm", "kms")), Ownership(APP, "alice"),
        say=lambda _: None, sleep=waited.append,
    )  # fmt: skip

    assert teardown.run() == []

    assert waited == [1.0, 2.0, 1.0]
    assert_gone(stages["alice"])
    assert_whole(stages["bob"])


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_every_page_is_read_before_anything_on_it_is_deleted(
    stages: dict[str, Deployed],
) -> None:
    """Two items a page: the CAs, the certificates under a CA, the things. AWS IoT's markers
    are opaque; the added listing's are offsets, so a teardown that deleted as it paged would
    skip certificates here."""
    session = boto3.session.Session()
    calls = recorded(session)
    teardown = Teardown(
        *(session.client(name) for name in ("iot", "acm", "kms")), Ownership(APP, "alice"),
        say=lambda _: None, page_size=2,
    )  # fmt: skip

    assert teardown.run() == []

    pages = [params for name, params in calls if name == "ListCertificatesByCA"]
    assert [params.get("marker") for params in pages[:2]] == [None, "2"]
    assert_gone(stages["alice"])
    assert_whole(stages["bob"])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "the following arguments are required: --stage"),
        (["--stage", "Alice"], "--stage: lowercase letters"),
        (["--stage", "alice", "--app", "-x"], "expected one argument"),
    ],
)
def test_the_stage_must_be_named_as_terraform_names_it(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        teardown_iot.main(arguments)
    assert usage.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_after_its_teardown_a_stage_s_device_policy_can_be_destroyed(
    stages: dict[str, Deployed], capsys: pytest.CaptureFixture[str]
) -> None:
    """What stopped `terraform destroy`: AWS IoT refuses to delete a policy still attached to
    certificates (DeleteConflictException, which the provider retries and never resolves). Once
    the stage is torn down, the deletion Terraform makes of `aws_iot_policy.devices` goes
    through; the other stage's policy is still attached to its devices."""
    iot = boto3.client("iot")
    for stage in STAGES:
        with pytest.raises(ClientError) as refused:
            iot.delete_policy(policyName=device_policy(stage))
        assert refused.value.response["Error"]["Code"] == "DeleteConflictException"

    assert teardown_iot.main(RUN, session=boto3.session.Session()) == 0, capsys.readouterr().out

    iot.delete_policy(policyName=device_policy("alice"))
    with pytest.raises(ClientError) as refused:
        iot.delete_policy(policyName=device_policy("bob"))
    assert refused.value.response["Error"]["Code"] == "DeleteConflictException"
    assert_whole(stages["bob"])

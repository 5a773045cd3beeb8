"""AWS IoT Core onboarding: the verification certificate (local backend, checked with
cryptography), and on AWS under moto: a cell CA registered (DEFAULT and SNI_ONLY), a device
registered with its thing, and its revocation reaching AWS IoT.

moto checks neither the verification certificate nor the provisioning template: the tests check
the verification certificate themselves, and the template is unit-tested
(tests/unit/test_iot_onboarding.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest
from chalice.test import Client
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

from chalicelib import wiring
from chalicelib.api.fields import MAX_AWS_IOT_BULK
from chalicelib.config import load_settings
from devtools.aws_resources import AWS_ENVIRONMENT
from tests.backends import INVENTORY_HANDLER, Backend, MotoBackend
from tests.helpers import ApiClient, assert_rejected, snapshot_certstore

ROOT = "example.com"
CELL = "cell1.example.com"
CODE = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"  # 64 hex, as AWS gives
POLICY = AWS_ENVIRONMENT["IOT_DEVICE_POLICY_NAME"]
CERTIFICATE_ONLY = {"register": True, "thing": False}
"""Registered without a thing: all these tests need of a device in AWS IoT."""


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def check_verification_certificate(pem: str, code: str, ca_pem: str) -> x509.Certificate:
    """What AWS IoT checks of it: CN = the code, signed by the CA's key; and it is no CA."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    assert common_name(certificate) == code
    certificate.verify_directly_issued_by(ca)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False and constraints.critical
    return certificate


def test_verification_certificate_is_signed_by_the_ca_with_the_code_as_cn(
    api: ApiClient, certstore: Any
) -> None:
    api.create("root", fqdn=ROOT)
    cell = api.create("intermediate", fqdn=CELL)
    before = snapshot_certstore(certstore)

    response = api.post(f"/certificates/{CELL}/aws-iot/verification-certificate", {
        "registration_code": CODE})  # fmt: skip

    assert response.status_code == 200, response.body
    certificate = check_verification_certificate(
        response.body["certificate"], CODE, cell["certificate"]
    )
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime <= timedelta(days=1, minutes=5)
    key = load_pem_private_key(response.body["private_key"].encode(), None)
    assert key.public_key() == certificate.public_key()
    assert snapshot_certstore(certstore) == before  # nothing stored but the audit line


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        (CELL, {}, 400, "registration_code: is required"),
        (CELL, {"registration_code": "ab-cd"}, 400, "registration_code: must be"),
        (CELL, {"registration_code": "a" * 65}, 400, "registration_code: must be"),
        (CELL, {"registration_code": CODE, "ca": 1}, 400, "ca: unknown field"),
        ("nowhere.example.com", {"registration_code": CODE}, 404, "not found"),
    ],
)
def test_verification_certificate_bad_input(
    api: ApiClient, path: str, body: dict[str, Any], status: int, field: str
) -> None:
    api.create("root", fqdn=ROOT)
    api.create("intermediate", fqdn=CELL)
    response = api.post(f"/certificates/{path}/aws-iot/verification-certificate", body)
    assert response.status_code == status, response.body
    assert field in response.body["Message"]


def test_on_the_local_backend_registration_is_refused_and_nothing_is_issued(
    api: ApiClient, certstore: Any
) -> None:
    api.create("root", fqdn=ROOT)
    api.create("intermediate", fqdn=CELL)
    before = snapshot_certstore(certstore)

    registered = api.post(f"/certificates/{CELL}/aws-iot/register", {})
    devices = [
        api.post("/certificates/device", {"parent_fqdn": CELL, "aws_iot": aws_iot})
        for aws_iot in ({"register": True, "thing": True}, CERTIFICATE_ONLY)
    ]

    for response in (registered, *devices):
        assert response.status_code == 501, response.body
        assert response.body["Code"] == "NotImplementedOnBackendError"
        assert "BACKEND=aws" in response.body["Message"]
    assert snapshot_certstore(certstore) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"aws_iot": {"thing": True}}, "aws_iot.thing: needs aws_iot.register"),
        ({"aws_iot": {"register": "yes"}}, "aws_iot.register: must be true or false"),
        ({"aws_iot": {"policy": "x"}}, "aws_iot.policy: unknown field"),
        (
            {"count": MAX_AWS_IOT_BULK + 1, "aws_iot": CERTIFICATE_ONLY},
            f"aws_iot.register: at most {MAX_AWS_IOT_BULK}",
        ),
        ({"aws_iot": {"register": True}}, "aws_iot.thing: is required with aws_iot.register"),
    ],
)
def test_device_issuance_for_aws_iot_bad_input(
    api: ApiClient, body: dict[str, Any], field: str
) -> None:
    response = api.post("/certificates/device", {"parent_fqdn": CELL, **body})
    assert response.status_code == 400, response.body
    assert field in response.body["Message"]


def test_registration_without_saying_whether_to_make_the_thing_is_refused_on_either_backend(
    backend: Backend, backend_api: ApiClient
) -> None:
    """A certificate registered without a thing is ACTIVE, yet the stack's device policy
    (iot:Connection.Thing.IsAttached) never lets it connect: `register` alone is a 400 that says
    so and what to send, on either backend (a request's validity does not depend on the backend,
    which is checked after it: the local one answers 501 to a valid one), and nothing is stored
    or registered."""
    backend_api.create("root", fqdn=ROOT)
    backend_api.create("intermediate", fqdn=CELL)

    for body in ({"register": True}, {"register": True, "thing": None}):
        message = assert_rejected(
            backend_api, backend, "POST", "/certificates/device",
            {"parent_fqdn": CELL, "count": 2, "aws_iot": body},
            field="aws_iot.thing", contains="is required with aws_iot.register",
        )  # fmt: skip
        assert "iot:Connection.Thing.IsAttached" in message
        assert '"thing": true' in message and '"thing": false' in message
    if backend.name == "aws":
        assert boto3.client("iot").list_certificates()["certificates"] == []


# On AWS, under moto --------------------------------------------------------------------------


@dataclass
class IotRecording:
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # name, parameters
    codes: list[str] = field(default_factory=list)  # what GetRegistrationCode answered


@pytest.fixture
def iot_calls() -> IotRecording:
    return IotRecording()


@pytest.fixture
def iot_api(backend: MotoBackend, iot_calls: IotRecording) -> Iterator[ApiClient]:
    """The API on moto, its IoT calls recorded (their parameters, as sent), with a root and a
    cell CA in the inventory. Later events are not delivered on their own: tests hand them to
    the handler."""
    from app import app

    session = boto3.session.Session()  # its own: the recording hooks stay with this test
    session.events.register(
        "provide-client-params.iot.*",
        lambda params, model, **_: iot_calls.calls.append((model.name, dict(params))),
    )
    session.events.register(
        "after-call.iot.GetRegistrationCode",
        lambda parsed, **_: iot_calls.codes.append(parsed["registrationCode"]),
    )
    wiring.override_service(wiring.build_service(load_settings(), boto_session=session))
    with Client(app, stage_name="test") as client:
        api = ApiClient(client)
        api.create("root", fqdn=ROOT)
        api.create("intermediate", fqdn=CELL)
        backend.deliver_events(client)
        yield api


def deliver_twice(backend: MotoBackend, api: ApiClient) -> int:
    """Every waiting event to the handler, and each a second time (EventBridge may replay)."""
    envelopes = backend.receive_events()
    for envelope in envelopes + envelopes:
        api.chalice_client.lambda_.invoke(INVENTORY_HANDLER, envelope)
    return len(envelopes)


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_register_a_cell_issue_a_device_revoke_it_in_aws_iot(
    backend: MotoBackend, iot_api: ApiClient, iot_calls: IotRecording
) -> None:
    iot = boto3.client("iot")
    cell = iot_api.get(f"/certificates/{CELL}").body

    response = iot_api.post(f"/certificates/{CELL}/aws-iot/register", {"mode": "DEFAULT"})

    assert response.status_code == 200, response.body
    registered = response.body
    assert registered["ca_certificate_id"] == cell["fingerprint_sha256"]
    assert registered["data_endpoint"].endswith(".amazonaws.com")
    assert "CA certificate" in registered["device_presents"]
    sent = next(params for name, params in iot_calls.calls if name == "RegisterCACertificate")
    assert len(iot_calls.codes) == 1
    check_verification_certificate(
        sent["verificationCertificate"], iot_calls.codes[0], cell["certificate"]
    )
    assert sent["certificateMode"] == "DEFAULT" and sent["allowAutoRegistration"] is True
    template = json.loads(sent["registrationConfig"]["templateBody"])
    assert template["Resources"]["policy"]["Properties"]["PolicyName"] == POLICY
    described = iot.describe_ca_certificate(certificateId=registered["ca_certificate_id"])
    assert described["certificateDescription"]["status"] == "ACTIVE"
    assert described["registrationConfig"]["roleArn"] == AWS_ENVIRONMENT[
        "IOT_PROVISIONING_ROLE_ARN"]  # fmt: skip

    ed25519 = iot_api.post("/certificates/device", {
        "parent_fqdn": CELL, "key_type": "ED25519", "aws_iot": {"register": True, "thing": True}
    })  # fmt: skip
    assert ed25519.status_code == 400 and "key_type: ED25519" in ed25519.body["Message"]

    device = iot_api.create("device", parent_fqdn=CELL, aws_iot={"register": True, "thing": True})

    outcome = device["aws_iot"]
    assert outcome["certificate_id"] == device["fingerprint_sha256"]
    assert outcome["thing_name"] == device["device_id"] and outcome["error"] is None
    status = iot.describe_certificate(certificateId=outcome["certificate_id"])
    assert status["certificateDescription"]["status"] == "ACTIVE"
    principals = iot.list_thing_principals(thingName=device["device_id"])["principals"]
    assert principals == [outcome["certificate_arn"]]
    policies = iot.list_attached_policies(target=outcome["certificate_arn"])["policies"]
    assert [policy["policyName"] for policy in policies] == [POLICY]
    assert deliver_twice(backend, iot_api) == 1  # its `created`

    assert iot_api.post(f"/certificates/{device['fqdn']}/revoke", {}).status_code == 200
    assert deliver_twice(backend, iot_api) == 1  # its `revoked`, replayed

    status = iot.describe_certificate(certificateId=outcome["certificate_id"])
    assert status["certificateDescription"]["status"] == "REVOKED"
    assert iot.describe_ca_certificate(certificateId=registered["ca_certificate_id"])[
        "certificateDescription"]["status"] == "ACTIVE"  # fmt: skip

    assert iot_api.post(f"/certificates/{CELL}/revoke", {}).status_code == 200
    assert deliver_twice(backend, iot_api) == 1
    assert iot.describe_ca_certificate(certificateId=registered["ca_certificate_id"])[
        "certificateDescription"]["status"] == "INACTIVE"  # fmt: skip


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_sni_only_registration_sends_no_verification_certificate(
    backend: MotoBackend, iot_api: ApiClient, iot_calls: IotRecording
) -> None:
    response = iot_api.post(
        f"/certificates/{CELL}/aws-iot/register",
        {"mode": "SNI_ONLY", "provisioning": "none", "auto_registration": False},
    )

    assert response.status_code == 200, response.body
    assert [name for name, _ in iot_calls.calls] == ["RegisterCACertificate", "DescribeEndpoint"]
    sent = iot_calls.calls[0][1]
    assert "verificationCertificate" not in sent and "registrationConfig" not in sent
    assert sent["certificateMode"] == "SNI_ONLY"
    assert response.body["data_endpoint"] in response.body["device_presents"]
    described = boto3.client("iot").describe_ca_certificate(
        certificateId=response.body["ca_certificate_id"]
    )
    assert described["certificateDescription"]["status"] == "ACTIVE"


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_thing_false_registers_the_certificate_alone(
    backend: MotoBackend, iot_api: ApiClient, iot_calls: IotRecording
) -> None:
    """The documented way to register without a thing (attached to one of the caller's later):
    ACTIVE with the device policy, and no thing made."""
    iot_calls.calls.clear()

    device = iot_api.create("device", parent_fqdn=CELL, aws_iot=CERTIFICATE_ONLY)

    outcome = device["aws_iot"]
    assert outcome["certificate_id"] == device["fingerprint_sha256"]
    assert outcome["thing_name"] is None and outcome["error"] is None
    assert [name for name, _ in iot_calls.calls] == ["RegisterCertificate", "AttachPolicy"]
    iot = boto3.client("iot")
    assert status(iot, outcome["certificate_id"]) == "ACTIVE"
    assert iot.list_principal_things(principal=outcome["certificate_arn"])["things"] == []
    assert iot.list_things()["things"] == []


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_a_device_whose_registration_fails_is_still_issued(
    backend: MotoBackend, iot_api: ApiClient
) -> None:
    """AttachPolicy fails when the policy is missing: the error is reported on the device, whose
    certificate and key are returned and stored."""
    boto3.client("iot").delete_policy(policyName=POLICY)

    device = iot_api.create("device", parent_fqdn=CELL, aws_iot=CERTIFICATE_ONLY)

    assert device["aws_iot"]["certificate_id"] is None
    assert "AWS IoT registration failed" in device["aws_iot"]["error"]
    assert device["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert iot_api.get(f"/certificates/{device['fqdn']}").status_code == 200


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_revoking_a_ca_revokes_every_device_aws_iot_registered_below_it(
    backend: MotoBackend, iot_api: ApiClient
) -> None:
    """AWS IoT reads no CRL, and keeps accepting the devices of an INACTIVE CA: revoking a CA
    two levels up marks each device certificate registered under the cell REVOKED, under both
    generations of the cell, through the cascade handler, one page an invocation (the test's
    Lambda context has three seconds, so every page hands the rest on to the next)."""
    iot = boto3.client("iot")
    devices_ca = "devices.example.com"
    cell = f"cell2.{devices_ca}"
    iot_api.create("intermediate", fqdn=devices_ca, path_length=1)
    iot_api.create("intermediate", fqdn=cell)
    register = {"mode": "SNI_ONLY", "provisioning": "none", "auto_registration": False}
    assert iot_api.post(f"/certificates/{cell}/aws-iot/register", register).status_code == 200
    registered = [
        iot_api.create("device", parent_fqdn=cell, aws_iot=CERTIFICATE_ONLY) for _ in range(2)
    ]
    renewed_cell = iot_api.post(f"/certificates/{cell}/renew", {}).body
    assert iot_api.post(f"/certificates/{cell}/aws-iot/register", register).status_code == 200
    registered.append(iot_api.create("device", parent_fqdn=cell, aws_iot=CERTIFICATE_ONLY))
    unregistered = iot_api.create("device", parent_fqdn=CELL)  # another branch: untouched
    backend.deliver_events(iot_api.chalice_client)
    ids = [device["aws_iot"]["certificate_id"] for device in registered]
    assert {status(iot, certificate_id) for certificate_id in ids} == {"ACTIVE"}

    revoked = iot_api.post(f"/certificates/{devices_ca}/revoke", {"reason": "keyCompromise"})
    assert revoked.status_code == 200, revoked.body
    backend.invocations.clear()
    backend.deliver_events(iot_api.chalice_client)
    assert backend.invocations["revocation_cascade"] >= 4  # the revocation, then handed on

    assert {status(iot, certificate_id) for certificate_id in ids} == {"REVOKED"}
    cell_ids = [renewed_cell["fingerprint_sha256"], ca_id_of(iot_api, cell, generation=1)]
    for cell_id in cell_ids:
        described = iot.describe_ca_certificate(certificateId=cell_id)
        assert described["certificateDescription"]["status"] == "INACTIVE"
    assert iot_api.get(f"/certificates/{unregistered['fqdn']}").body["status"] == "active"
    # replayed, the walk changes nothing and fails on nothing
    replay = revoked.body
    assert iot_api.post(f"/certificates/{devices_ca}/revoke", {}).status_code == 409
    assert replay["status"] == "revoked"


def status(iot: Any, certificate_id: str) -> str:
    return str(
        iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"]
    )


def ca_id_of(api: ApiClient, fqdn: str, generation: int) -> str:
    history = api.get(f"/certificates/{fqdn}/history").body["items"]
    return str(history[generation - 1]["fingerprint_sha256"])


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_deleting_a_revoked_cell_removes_it_and_its_devices_from_aws_iot(
    backend: MotoBackend, iot_api: ApiClient
) -> None:
    """The cell (both generations registered), its devices (with and without things) and their
    things leave moto's registry, through the cascade handler; a device of another cell, and
    a thing that is not the deployment's, stay."""
    iot = boto3.client("iot")
    cell = f"cell3.{ROOT}"
    iot_api.create("intermediate", fqdn=cell)
    register = {"mode": "SNI_ONLY", "provisioning": "none", "auto_registration": False}
    assert iot_api.post(f"/certificates/{cell}/aws-iot/register", register).status_code == 200
    with_thing = iot_api.create("device", parent_fqdn=cell,
                                aws_iot={"register": True, "thing": True})  # fmt: skip
    alone = iot_api.create("device", parent_fqdn=cell, aws_iot=CERTIFICATE_ONLY)
    iot_api.post(f"/certificates/{cell}/renew", {})
    assert iot_api.post(f"/certificates/{cell}/aws-iot/register", register).status_code == 200
    renewed_cell_device = iot_api.create("device", parent_fqdn=cell, aws_iot=CERTIFICATE_ONLY)
    assert iot_api.post(f"/certificates/{CELL}/aws-iot/register", register).status_code == 200
    elsewhere = iot_api.create("device", parent_fqdn=CELL, aws_iot=CERTIFICATE_ONLY)
    iot.create_thing(thingName="someone-elses")
    iot.attach_thing_principal(thingName="someone-elses",
                               principal=alone["aws_iot"]["certificate_arn"])  # fmt: skip
    cell_ids = [item["fingerprint_sha256"]
                for item in iot_api.get(f"/certificates/{cell}/history").body["items"]]  # fmt: skip
    backend.deliver_events(iot_api.chalice_client)
    assert iot_api.post(f"/certificates/{cell}/revoke", {}).status_code == 200
    backend.deliver_events(iot_api.chalice_client)

    deleted = iot_api.delete(f"/certificates/{cell}?cascade=true")
    backend.deliver_events(iot_api.chalice_client)

    assert deleted.status_code == 200, deleted.body
    assert deleted.body["deleted"] == 4
    registered = {entry["certificateId"] for entry in iot.list_certificates()["certificates"]}
    assert registered == {elsewhere["aws_iot"]["certificate_id"]}
    for cell_id in cell_ids:
        with pytest.raises(iot.exceptions.ResourceNotFoundException):
            iot.describe_ca_certificate(certificateId=cell_id)
    cell1_id = iot_api.get(f"/certificates/{CELL}").body["fingerprint_sha256"]
    described = iot.describe_ca_certificate(certificateId=cell1_id)  # another cell's stays
    assert described["certificateDescription"]["status"] == "ACTIVE"
    things = {thing["thingName"] for thing in iot.list_things()["things"]}
    assert things == {"someone-elses"}  # the device's thing went; another's was only detached
    assert with_thing["aws_iot"]["thing_name"] not in things
    assert renewed_cell_device["fqdn"] not in {
        item["fqdn"] for item in iot_api.get(f"/certificates?parent={CELL}").body["items"]
    }

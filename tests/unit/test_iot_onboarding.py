"""The just-in-time provisioning template (moto does not implement provisioning templates: it
stores the registration config unread) and what a device is told to present."""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import Concept, InvalidRequest
from chalicelib.iot_onboarding import (
    MAX_TEMPLATE_CHARACTERS,
    IotCaRequest,
    device_presents,
    provisioning_template,
    refuse_ed25519,
)
from chalicelib.model import KeyType


def test_the_template_names_the_thing_by_the_certificates_cn_and_activates_it() -> None:
    body = provisioning_template("iot-cert-service-dev-devices")
    template = json.loads(body)

    assert len(body) <= MAX_TEMPLATE_CHARACTERS
    parameters = template["Parameters"]
    assert parameters["AWS::IoT::Certificate::CommonName"] == {"Type": "String"}
    resources = template["Resources"]
    assert resources["thing"]["Type"] == "AWS::IoT::Thing"
    assert resources["thing"]["Properties"]["ThingName"] == {
        "Ref": "AWS::IoT::Certificate::CommonName"
    }
    assert resources["certificate"]["Properties"] == {
        "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
        "Status": "ACTIVE",
    }
    assert resources["policy"] == {
        "Type": "AWS::IoT::Policy",
        "Properties": {"PolicyName": "iot-cert-service-dev-devices"},
    }


def test_the_things_it_makes_carry_the_deployments_app_and_stage() -> None:
    """A thing takes no tags: its owner is in its attributes, which `make teardown-aws` finds
    it by (an untyped thing takes three)."""
    owner = {"app": "iot-cert-service", "stage": "alice"}
    template = json.loads(provisioning_template("iot-cert-service-alice-devices", owner))

    assert template["Resources"]["thing"]["Properties"]["AttributePayload"] == owner
    untagged = json.loads(provisioning_template("iot-cert-service-alice-devices"))
    assert "AttributePayload" not in untagged["Resources"]["thing"]["Properties"]


def test_a_template_over_aws_iots_limit_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="10,240"):
        provisioning_template("p" * MAX_TEMPLATE_CHARACTERS)


@pytest.mark.parametrize(
    ("request_", "says", "does_not_say"),
    [
        (IotCaRequest("DEFAULT", True, "jitp"), "CA certificate", "SNI"),
        (IotCaRequest("SNI_ONLY", False, "none"), "as SNI", "CA certificate"),
    ],
)
def test_what_a_device_presents(request_: IotCaRequest, says: str, does_not_say: str) -> None:
    presents = device_presents(request_, "abc-ats.iot.eu-central-1.amazonaws.com")
    assert says in presents and does_not_say not in presents


def test_ed25519_devices_are_refused_for_aws_iot() -> None:
    refuse_ed25519([KeyType.EC_P256, KeyType.RSA_2048], Concept.CSRS)
    with pytest.raises(InvalidRequest, match=r"^ED25519") as raised:
        refuse_ed25519([KeyType.EC_P256, KeyType.ED25519], Concept.CSRS)
    assert raised.value.concept is Concept.CSRS

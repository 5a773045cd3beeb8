"""The IotRegistry port: one contract over the fake and AWS IoT (on moto).

What moto leaves unchecked (the verification certificate, a CA registered twice, a device whose
CA is not registered) is not part of the contract; tests/api/test_aws_iot.py checks the
verification certificate itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.adapters.aws.iot import AwsIotRegistry
from chalicelib.adapters.local.iot import NoIotRegistry
from chalicelib.errors import Unsupported
from chalicelib.model import KeyType, SubjectDetails
from chalicelib.ownership import Ownership
from chalicelib.pki import (
    SigningAuthority,
    Validity,
    build_subject,
    certificate_to_pem,
    device_profile,
    fingerprint_sha256,
    generate_private_key,
    load_certificate,
    root_profile,
    sign_certificate,
)
from chalicelib.ports.iot_registry import CaRegistration, IotRegistry
from devtools.aws_resources import AWS_ENVIRONMENT
from tests.backends import AwsResources, adapter_params
from tests.fakes import InMemoryIotRegistry

DEVICE_ID = "7f9c1c1e-8a2b-4c47-9d3e-2f1a5b6c7d8e"


@functools.cache
def ca_and_device() -> tuple[str, str]:
    """A CA and a device it signed (PEM), made once."""
    now = datetime.now(UTC)
    validity = Validity(now - timedelta(minutes=5), now + timedelta(days=30))
    ca_key = generate_private_key(KeyType.EC_P256)
    subject = build_subject("cell.example.com", SubjectDetails())
    ca = sign_certificate(root_profile(), subject, ca_key.public_key(), validity, None, ca_key)
    device = sign_certificate(
        device_profile(KeyType.EC_P256, f"{DEVICE_ID}.cell.example.com"),
        build_subject(DEVICE_ID, SubjectDetails()),
        generate_private_key(KeyType.EC_P256).public_key(),
        validity,
        SigningAuthority(ca, ca_key),
    )
    return certificate_to_pem(ca), certificate_to_pem(device)


RegistryFactory = Callable[[pytest.FixtureRequest], IotRegistry]


def _aws_iot(request: pytest.FixtureRequest) -> IotRegistry:
    aws: AwsResources = request.getfixturevalue("aws_resources")
    return AwsIotRegistry(
        aws.session.client("iot"),
        AWS_ENVIRONMENT["IOT_DEVICE_POLICY_NAME"],
        AWS_ENVIRONMENT["IOT_PROVISIONING_ROLE_ARN"],
        Ownership("iot-cert-service", "contract"),
    )


@pytest.fixture(
    params=adapter_params([("memory", lambda _: InMemoryIotRegistry()), ("aws_iot", _aws_iot)])
)
def registry(request: pytest.FixtureRequest) -> IotRegistry:
    factory: RegistryFactory = request.param
    return factory(request)


def test_ids_are_the_certificates_fingerprints_and_revocation_reaches_each(
    registry: IotRegistry,
) -> None:
    ca_pem, device_pem = ca_and_device()
    assert registry.available and registry.registration_code()
    assert registry.data_endpoint()

    ca = registry.register_ca(CaRegistration(ca_pem, "SNI_ONLY", auto_registration=False))
    device = registry.register_device(device_pem, ca_pem, thing=True)

    assert ca.certificate_id == fingerprint_sha256(load_certificate(ca_pem))
    assert device.certificate_id == fingerprint_sha256(load_certificate(device_pem))
    assert device.certificate_arn.endswith(device.certificate_id)
    assert registry.revoke_certificate(device.certificate_id) is True
    assert registry.revoke_certificate(device.certificate_id) is True  # a replay
    assert registry.deactivate_ca(ca.certificate_id) is True


def test_removal_takes_a_device_with_its_thing_then_its_ca_out_of_the_registry(
    registry: IotRegistry,
) -> None:
    ca_pem, device_pem = ca_and_device()
    ca = registry.register_ca(CaRegistration(ca_pem, "SNI_ONLY", auto_registration=False))
    device = registry.register_device(device_pem, ca_pem, thing=True)

    assert registry.remove_certificate(device.certificate_id) is True  # active, with a thing
    assert registry.certificates_of_ca(ca.certificate_id, None) == ([], None)
    assert registry.remove_certificate(device.certificate_id) is False  # a replay
    assert registry.remove_ca(ca.certificate_id) is True
    assert registry.remove_ca(ca.certificate_id) is False
    # gone, not merely revoked: registering the same certificates again is accepted
    ca_again = registry.register_ca(CaRegistration(ca_pem, "SNI_ONLY", auto_registration=False))
    assert registry.register_device(device_pem, ca_pem, thing=True) == device
    assert ca_again.certificate_id == ca.certificate_id


def test_what_was_never_registered_is_reported_not_raised(registry: IotRegistry) -> None:
    unknown = "0" * 64
    assert registry.revoke_certificate(unknown) is False
    assert registry.deactivate_ca(unknown) is False
    assert registry.remove_certificate(unknown) is False
    assert registry.remove_ca(unknown) is False


def test_the_local_backend_registers_nothing_and_says_why() -> None:
    registry = NoIotRegistry()
    assert registry.available is False
    with pytest.raises(Unsupported, match="BACKEND=aws"):
        registry.registration_code()
    assert registry.revoke_certificate("0" * 64) is False
    assert registry.remove_certificate("0" * 64) is False

"""IotRegistry port: AWS IoT Core's own registry of CAs, device certificates and things.

AWS IoT authenticates a device by looking its certificate up in this registry, not by a CRL, so
registration and revocation must reach it. Its certificate IDs are the SHA-256 fingerprints of
the certificates (DER), which the service already records: nothing else needs to be stored to
find a registered certificate again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.x509.oid import NameOID

from chalicelib import pki
from chalicelib.aws import aws_error_code, aws_errors
from chalicelib.errors import AlreadyExists, StorageError, Unsupported

IOT_DEVICE_CALLS = 4
"""The budget of one device's registration: RegisterCertificate, AttachPolicy, CreateThing,
AttachThingPrincipal."""


class IotRegistrationError(Exception):
    """One device could not be registered with AWS IoT; its certificate is stored all the same."""


@dataclass(frozen=True)
class IotCertificate:
    certificate_id: str
    certificate_arn: str


@dataclass(frozen=True)
class CaRegistration:
    """What RegisterCACertificate is given."""

    ca_certificate_pem: str
    mode: str
    auto_registration: bool
    verification_certificate_pem: str | None = None  # DEFAULT mode only
    provisioning_template: str | None = None  # JITP


class IotRegistry(Protocol):
    available: bool
    """False where there is no AWS IoT (local): asked before anything is issued for it."""

    def registration_code(self) -> str:
        """The account's registration code (the CN a verification certificate must carry)."""

    def register_ca(self, registration: CaRegistration) -> IotCertificate:
        """Register the CA, active; AlreadyExists when it is registered already."""

    def data_endpoint(self) -> str:
        """The account's ATS data endpoint, where devices connect."""

    def register_device(self, certificate_pem: str, ca_pem: str, thing: bool) -> IotCertificate:
        """Register the device certificate active, attach the device policy and, with `thing`,
        create a thing named by its CN and attach the certificate to it (IOT_DEVICE_CALLS
        calls at most); IotRegistrationError when any step fails."""

    def revoke_certificate(self, certificate_id: str) -> bool:
        """Mark a device certificate REVOKED; False when it was never registered."""

    def deactivate_ca(self, certificate_id: str) -> bool:
        """Mark a CA certificate INACTIVE; False when it was never registered."""


class NoIotRegistry:
    """The local backend: there is no AWS IoT to register with."""

    available = False

    def registration_code(self) -> str:
        raise unsupported()

    def register_ca(self, registration: CaRegistration) -> IotCertificate:
        raise unsupported()

    def data_endpoint(self) -> str:
        raise unsupported()

    def register_device(self, certificate_pem: str, ca_pem: str, thing: bool) -> IotCertificate:
        raise unsupported()

    def revoke_certificate(self, certificate_id: str) -> bool:
        return False  # nothing is ever registered locally

    def deactivate_ca(self, certificate_id: str) -> bool:
        return False


@dataclass
class InMemoryIotRegistry:
    """A fake of AWS IoT's registry for unit tests: statuses by certificate ID, things."""

    available = True

    code: str = "0" * 64
    endpoint: str = "example-ats.iot.us-east-1.amazonaws.com"
    cas: dict[str, str] = field(default_factory=dict)
    certificates: dict[str, str] = field(default_factory=dict)
    things: dict[str, str] = field(default_factory=dict)  # thing name -> certificate ID
    registrations: list[CaRegistration] = field(default_factory=list)

    def registration_code(self) -> str:
        return self.code

    def register_ca(self, registration: CaRegistration) -> IotCertificate:
        certificate_id = certificate_id_of(registration.ca_certificate_pem)
        if certificate_id in self.cas:
            raise AlreadyExists(f"certificate: already registered with AWS IoT as {certificate_id}")
        self.cas[certificate_id] = "ACTIVE"
        self.registrations.append(registration)
        return IotCertificate(certificate_id, f"arn:aws:iot:us-east-1:0:cacert/{certificate_id}")

    def data_endpoint(self) -> str:
        return self.endpoint

    def register_device(self, certificate_pem: str, ca_pem: str, thing: bool) -> IotCertificate:
        if certificate_id_of(ca_pem) not in self.cas:
            raise IotRegistrationError("its CA is not registered with AWS IoT")
        certificate_id = certificate_id_of(certificate_pem)
        self.certificates[certificate_id] = "ACTIVE"
        if thing:
            self.things[thing_name_of(certificate_pem)] = certificate_id
        return IotCertificate(certificate_id, f"arn:aws:iot:us-east-1:0:cert/{certificate_id}")

    def revoke_certificate(self, certificate_id: str) -> bool:
        if certificate_id not in self.certificates:
            return False
        self.certificates[certificate_id] = "REVOKED"
        return True

    def deactivate_ca(self, certificate_id: str) -> bool:
        if certificate_id not in self.cas:
            return False
        self.cas[certificate_id] = "INACTIVE"
        return True


class AwsIotRegistry:
    """The AWS IoT control plane (boto3 `iot` client), with the stack's device policy."""

    available = True

    def __init__(self, client: Any, device_policy_name: str, provisioning_role_arn: str) -> None:
        self._client = client
        self._policy = device_policy_name
        self._provisioning_role_arn = provisioning_role_arn

    def registration_code(self) -> str:
        return str(self._call("get_registration_code")["registrationCode"])

    def register_ca(self, registration: CaRegistration) -> IotCertificate:
        arguments: dict[str, Any] = {
            "caCertificate": registration.ca_certificate_pem,
            "setAsActive": True,
            "allowAutoRegistration": registration.auto_registration,
            "certificateMode": registration.mode,
        }
        if registration.verification_certificate_pem is not None:
            arguments["verificationCertificate"] = registration.verification_certificate_pem
        if registration.provisioning_template is not None:
            if not self._provisioning_role_arn:
                raise Unsupported("provisioning: jitp needs IOT_PROVISIONING_ROLE_ARN to be set")
            arguments["registrationConfig"] = {
                "templateBody": registration.provisioning_template,
                "roleArn": self._provisioning_role_arn,
            }
        try:
            response = self._client.register_ca_certificate(**arguments)
        except aws_errors() as err:
            if aws_error_code(err) == "ResourceAlreadyExistsException":
                raise AlreadyExists(f"certificate: already registered with AWS IoT: {err}") from err
            raise StorageError(f"AWS IoT RegisterCACertificate failed: {err}") from err
        return IotCertificate(response["certificateId"], response["certificateArn"])

    def data_endpoint(self) -> str:
        endpoint = self._call("describe_endpoint", endpointType="iot:Data-ATS")
        return str(endpoint["endpointAddress"])

    def register_device(self, certificate_pem: str, ca_pem: str, thing: bool) -> IotCertificate:
        try:
            response = self._client.register_certificate(
                certificatePem=certificate_pem, caCertificatePem=ca_pem, status="ACTIVE"
            )
            registered = IotCertificate(response["certificateId"], response["certificateArn"])
            self._client.attach_policy(policyName=self._policy, target=registered.certificate_arn)
            if thing:
                name = thing_name_of(certificate_pem)
                self._client.create_thing(thingName=name)
                self._client.attach_thing_principal(
                    thingName=name, principal=registered.certificate_arn
                )
        except aws_errors() as err:
            raise IotRegistrationError(f"AWS IoT registration failed: {err}") from err
        return registered

    def revoke_certificate(self, certificate_id: str) -> bool:
        return self._set_status("update_certificate", certificate_id, "REVOKED")

    def deactivate_ca(self, certificate_id: str) -> bool:
        return self._set_status("update_ca_certificate", certificate_id, "INACTIVE")

    def _set_status(self, operation: str, certificate_id: str, status: str) -> bool:
        try:
            getattr(self._client, operation)(certificateId=certificate_id, newStatus=status)
        except aws_errors() as err:
            if aws_error_code(err) == "ResourceNotFoundException":
                return False
            raise StorageError(f"AWS IoT {operation} of {certificate_id} failed: {err}") from err
        return True

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**arguments)
        except aws_errors() as err:
            raise StorageError(f"AWS IoT {operation} failed: {err}") from err
        return response


def unsupported() -> Unsupported:
    return Unsupported("aws_iot: registration with AWS IoT needs the AWS backend (BACKEND=aws)")


def certificate_id_of(certificate_pem: str) -> str:
    """AWS IoT's certificate ID: the SHA-256 of the DER certificate."""
    return pki.fingerprint_sha256(pki.load_certificate(certificate_pem))


def thing_name_of(certificate_pem: str) -> str:
    """A device's thing is named by its certificate's CN (the device UUID), as JITP names it."""
    subject = pki.load_certificate(certificate_pem).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

"""The AWS IoT control plane (boto3 `iot` client)."""

from __future__ import annotations

from typing import Any

from chalicelib.adapters.aws.errors import aws_error_code, aws_errors
from chalicelib.errors import AlreadyExists, StorageError, Unsupported
from chalicelib.ownership import Ownership
from chalicelib.ports.iot_registry import (
    CaRegistration,
    IotCertificate,
    IotRegistrationError,
    RegisteredCertificate,
    thing_name_of,
)

PAGE_SIZE = 250
"""ListCertificatesByCA's largest page."""


class AwsIotRegistry:
    """The AWS IoT control plane (boto3 `iot` client), with the stack's device policy; what it
    creates carries its owner: CAs as tags, things as attributes (things take no tags)."""

    available = True

    def __init__(
        self,
        client: Any,
        device_policy_name: str,
        provisioning_role_arn: str,
        ownership: Ownership,
    ) -> None:
        self._client = client
        self._policy = device_policy_name
        self._provisioning_role_arn = provisioning_role_arn
        self._ownership = ownership

    @property
    def thing_attributes(self) -> dict[str, str]:
        return self._ownership.labels()

    def registration_code(self) -> str:
        return str(self._call("get_registration_code")["registrationCode"])

    def register_ca(self, registration: CaRegistration) -> IotCertificate:
        arguments: dict[str, Any] = {
            "caCertificate": registration.ca_certificate_pem,
            "setAsActive": True,
            "allowAutoRegistration": registration.auto_registration,
            "certificateMode": registration.mode,
            "tags": self._ownership.tags(),
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
                self._client.create_thing(
                    thingName=name, attributePayload={"attributes": self.thing_attributes}
                )
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

    def certificates_of_ca(
        self, ca_certificate_id: str, marker: str | None
    ) -> tuple[list[RegisteredCertificate], str | None]:
        arguments: dict[str, Any] = {"caCertificateId": ca_certificate_id, "pageSize": PAGE_SIZE}
        if marker:
            arguments["marker"] = marker
        try:
            response = self._client.list_certificates_by_ca(**arguments)
        except aws_errors() as err:
            if aws_error_code(err) == "ResourceNotFoundException":
                return [], None
            raise StorageError(f"AWS IoT ListCertificatesByCA failed: {err}") from err
        page = [
            RegisteredCertificate(entry["certificateId"], entry.get("status", ""))
            for entry in response.get("certificates", [])
        ]
        return page, response.get("nextMarker") or None

    def remove_certificate(self, certificate_id: str) -> bool:
        if not self.revoke_certificate(certificate_id):  # DeleteCertificate refuses an ACTIVE one
            return False
        arn = self._call("describe_certificate", certificateId=certificate_id)[
            "certificateDescription"
        ]["certificateArn"]
        things = self._call("list_principal_things", principal=arn).get("things", [])
        for name in things:
            self._call("detach_thing_principal", thingName=name, principal=arn)
            if self._made_here(name):
                self._ignore_absent("delete_thing", thingName=name)
        # the device policy detached by name (moto's forceDelete leaves its attachment behind,
        # which then fails the CA's deletion); forceDelete takes any other policy with it
        self._ignore_absent("detach_policy", policyName=self._policy, target=arn)
        return self._ignore_absent("delete_certificate", certificateId=certificate_id,
                                   forceDelete=True)  # fmt: skip

    def remove_ca(self, certificate_id: str) -> bool:
        if not self.deactivate_ca(certificate_id):
            return False
        return self._ignore_absent("delete_ca_certificate", certificateId=certificate_id)

    def _made_here(self, thing_name: str) -> bool:
        """A thing that carries this deployment's attributes (made by it or by its JITP)."""
        described = self._unless_absent("describe_thing", thingName=thing_name)
        if described is None:
            return False
        attributes = described.get("attributes", {})
        return all(attributes.get(name) == value for name, value in self.thing_attributes.items())

    def _ignore_absent(self, operation: str, **arguments: Any) -> bool:
        """One removal; False when what it removes is not there (removed before)."""
        return self._unless_absent(operation, **arguments) is not None

    def _set_status(self, operation: str, certificate_id: str, status: str) -> bool:
        return self._ignore_absent(operation, certificateId=certificate_id, newStatus=status)

    def _unless_absent(self, operation: str, **arguments: Any) -> dict[str, Any] | None:
        """The call's answer; None when what it names is not there."""
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**arguments)
        except aws_errors() as err:
            if aws_error_code(err) == "ResourceNotFoundException":
                return None
            named = arguments.get("certificateId")
            of = f" of {named}" if named else ""
            raise StorageError(f"AWS IoT {operation}{of} failed: {err}") from err
        return response

    def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        try:
            response: dict[str, Any] = getattr(self._client, operation)(**arguments)
        except aws_errors() as err:
            raise StorageError(f"AWS IoT {operation} failed: {err}") from err
        return response

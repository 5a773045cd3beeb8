"""The local backend has no AWS IoT: registration is refused (501), revocations reach nothing."""

from __future__ import annotations

from chalicelib.ports.iot_registry import (
    CaRegistration,
    IotCertificate,
    RegisteredCertificate,
    unsupported,
)


class NoIotRegistry:
    """The local backend: there is no AWS IoT to register with."""

    available = False

    @property
    def thing_attributes(self) -> dict[str, str]:
        return {}  # no thing is ever made locally

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

    def certificates_of_ca(
        self, ca_certificate_id: str, marker: str | None
    ) -> tuple[list[RegisteredCertificate], str | None]:
        return [], None

    def remove_certificate(self, certificate_id: str) -> bool:
        return False

    def remove_ca(self, certificate_id: str) -> bool:
        return False

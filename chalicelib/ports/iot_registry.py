"""IotRegistry port: AWS IoT Core's own registry of CAs, device certificates and things.

AWS IoT authenticates a device by looking its certificate up in this registry, not by a CRL, so
registration and revocation must reach it. Its certificate IDs are the SHA-256 fingerprints of
the certificates (DER), which the service already records: nothing else needs to be stored to
find a registered certificate again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from cryptography.x509.oid import NameOID

from chalicelib import pki
from chalicelib.errors import Concept, Unsupported

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
class RegisteredCertificate:
    certificate_id: str
    status: str  # AWS IoT's: ACTIVE, INACTIVE, REVOKED, PENDING_TRANSFER, ...


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

    @property
    def thing_attributes(self) -> dict[str, str]:
        """The attributes every thing made for this deployment carries (its app and stage: a
        thing cannot be tagged), whether the service or just-in-time provisioning makes it."""

    def registration_code(self) -> str:
        """The account's registration code (the CN a verification certificate must carry)."""

    def register_ca(self, registration: CaRegistration) -> IotCertificate:
        """Register the CA, active, tagged with its owner; AlreadyExists when it is registered
        already."""

    def data_endpoint(self) -> str:
        """The account's ATS data endpoint, where devices connect."""

    def register_device(self, certificate_pem: str, ca_pem: str, thing: bool) -> IotCertificate:
        """Register the device certificate active, attach the device policy and, with `thing`,
        create a thing named by its CN, with `thing_attributes`, and attach the certificate to
        it (IOT_DEVICE_CALLS calls at most); IotRegistrationError when any step fails."""

    def revoke_certificate(self, certificate_id: str) -> bool:
        """Mark a device certificate REVOKED; False when it was never registered."""

    def deactivate_ca(self, certificate_id: str) -> bool:
        """Mark a CA certificate INACTIVE; False when it was never registered."""

    def certificates_of_ca(
        self, ca_certificate_id: str, marker: str | None
    ) -> tuple[list[RegisteredCertificate], str | None]:
        """A page of the certificates registered under the CA certificate (AWS IoT's own list
        by CA), and where the next page starts (None: this was the last)."""

    def remove_certificate(self, certificate_id: str) -> bool:
        """Remove a device certificate's registration (its certificate was deleted): revoked
        first, detached from its things, each thing this deployment made removed, then the
        certificate itself; False when it was not registered. Idempotent."""

    def remove_ca(self, certificate_id: str) -> bool:
        """Remove a CA certificate's registration (made INACTIVE first); False when it was not
        registered. Its devices' registrations are removed before (`remove_certificate`)."""


def unsupported() -> Unsupported:
    return Unsupported(
        "registration with AWS IoT needs the AWS backend (BACKEND=aws)", Concept.AWS_IOT
    )


def certificate_id_of(certificate_pem: str) -> str:
    """AWS IoT's certificate ID: the SHA-256 of the DER certificate."""
    return pki.fingerprint_sha256(pki.load_certificate(certificate_pem))


def thing_name_of(certificate_pem: str) -> str:
    """A device's thing is named by its certificate's CN (the device UUID), as JITP names it."""
    subject = pki.load_certificate(certificate_pem).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

"""AWS IoT Core onboarding: a CA's verification certificate, its registration (with just-in-time
provisioning), device registration at issuance, and revocations forwarded to AWS IoT.

AWS IoT accepts a device only if its CA (or the device certificate itself) is in the account's
IoT registry, and it ignores CRLs: revoking here must also mark the certificate in that registry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib import pki
from chalicelib.audit import audit
from chalicelib.authority import Authority, AuthorityCache
from chalicelib.errors import Concept, InvalidRequest, Unsupported
from chalicelib.events import CertificateRevoked
from chalicelib.issuance import BACKDATE
from chalicelib.kinds import policy_for
from chalicelib.model import (
    CertType,
    IotDeviceOutcome,
    IssuedCertificate,
    KeyType,
    SubjectDetails,
)
from chalicelib.ports.iot_registry import (
    CaRegistration,
    IotRegistrationError,
    IotRegistry,
    unsupported,
)

logger = logging.getLogger(__name__)

IOT_KEY_TYPES = frozenset(
    {KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.RSA_3072, KeyType.RSA_4096}
)
"""Keys AWS IoT documents for X.509 client authentication: RSA and ECDSA (no Ed25519)."""
IOT_SIGNATURE_HASHES = frozenset({"sha256", "sha384", "sha512"})
VERIFICATION_VALIDITY = timedelta(days=1)
"""Long enough to register by hand, short enough that a leaked one is soon useless."""
MAX_TEMPLATE_CHARACTERS = 10_240  # AWS IoT's limit on a provisioning template's body
JITP = "jitp"
DEFAULT_MODE = "DEFAULT"
SNI_ONLY_MODE = "SNI_ONLY"


@dataclass(frozen=True)
class VerificationCertificate:
    certificate_pem: str
    private_key_pem: str
    not_after: datetime


@dataclass(frozen=True)
class IotCaRequest:
    mode: str
    auto_registration: bool
    provisioning: str  # "jitp" or "none"


@dataclass(frozen=True)
class IotCaRegistered:
    ca_fqdn: str
    certificate_id: str
    certificate_arn: str
    request: IotCaRequest
    data_endpoint: str
    device_presents: str


def provisioning_template(
    device_policy_name: str, thing_attributes: Mapping[str, str] | None = None
) -> str:
    """The JITP template: a thing named by the certificate's CN (the device UUID), with the
    deployment's attributes (its app and stage), the stack's device policy, the certificate
    activated."""
    thing: dict[str, object] = {"ThingName": {"Ref": "AWS::IoT::Certificate::CommonName"}}
    if thing_attributes:
        thing["AttributePayload"] = dict(thing_attributes)
    template = {
        "Parameters": {
            "AWS::IoT::Certificate::CommonName": {"Type": "String"},
            "AWS::IoT::Certificate::Id": {"Type": "String"},
        },
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": thing},
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {
                    "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
                    "Status": "ACTIVE",
                },
            },
            "policy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {"PolicyName": device_policy_name},
            },
        },
    }
    body = json.dumps(template, separators=(",", ":"))
    if len(body) > MAX_TEMPLATE_CHARACTERS:
        raise InvalidRequest(
            Concept.PROVISIONING, f"the template has {len(body)} characters; AWS IoT takes 10,240"
        )
    return body


def device_presents(request: IotCaRequest, endpoint: str) -> str:
    parts = ["its certificate and private key"]
    if request.provisioning == JITP:
        parts.append(
            "followed by the CA certificate in the same file on its first connection "
            "(just-in-time provisioning registers it then; that first connection is refused)"
        )
    if request.mode != DEFAULT_MODE:
        parts.append(f"the endpoint {endpoint} as SNI (server name indication)")
    return "; ".join(parts)


def refuse_unaccepted(authority: Authority) -> None:
    """AWS IoT takes RSA and ECDSA keys signed with SHA-256 or stronger."""
    record = authority.record
    if record.key_type not in IOT_KEY_TYPES:
        raise InvalidRequest(
            Concept.CERTIFICATE, f"{record.fqdn} has a {record.key_type.value} key; AWS IoT "
            "takes RSA and ECDSA keys only",
        )  # fmt: skip
    algorithm = authority.signing.certificate.signature_hash_algorithm
    if algorithm is None or algorithm.name not in IOT_SIGNATURE_HASHES:
        raise InvalidRequest(
            Concept.CERTIFICATE, f"{record.fqdn} is not signed with SHA-256 or stronger, which "
            "AWS IoT requires",
        )  # fmt: skip


class IotOnboarding:
    def __init__(
        self,
        registry: IotRegistry | None,
        authorities: AuthorityCache,
        clock: Callable[[], datetime],
        device_policy_name: str,
    ) -> None:
        self._registry = registry
        self._authorities = authorities
        self._clock = clock
        self._policy = device_policy_name

    def verification_certificate(self, ca_fqdn: str, code: str) -> VerificationCertificate:
        """Signed by the CA, CN = the registration code; only an audit line is kept of it."""
        now = self._clock()
        authority = self._authorities.current(ca_fqdn, Concept.CERTIFICATE)
        self._authorities.refuse_if_revoked(authority, now, Concept.CERTIFICATE)
        return self._verification(authority, code, now)

    def _verification(
        self, authority: Authority, code: str, now: datetime
    ) -> VerificationCertificate:
        key = pki.generate_private_key(KeyType.EC_P256)
        not_after = min(now + VERIFICATION_VALIDITY, authority.record.not_after)
        certificate = pki.sign_certificate(
            pki.verification_profile(),
            pki.build_subject(code, SubjectDetails()),
            key.public_key(),
            pki.Validity(now - BACKDATE, not_after),
            authority.signing,
        )
        audit(
            "aws-iot-verification-certificate", authority.record,
            verification_serial=pki.serial_hex(certificate), registration_code=code,
        )  # fmt: skip
        return VerificationCertificate(
            pki.certificate_to_pem(certificate), pki.private_key_to_pem(key), not_after
        )

    def register_ca(self, ca_fqdn: str, request: IotCaRequest) -> IotCaRegistered:
        """DEFAULT: proven with a verification certificate for the account's code; SNI_ONLY:
        without one. With JITP, devices are provisioned at their first connection."""
        registry = self._available_registry()
        now = self._clock()
        authority = self._authorities.current(ca_fqdn, Concept.CERTIFICATE)
        self._authorities.refuse_if_revoked(authority, now, Concept.CERTIFICATE)
        refuse_unaccepted(authority)
        verification = None
        if request.mode == DEFAULT_MODE:
            code = registry.registration_code()
            verification = self._verification(authority, code, now).certificate_pem
        template = None
        if request.provisioning == JITP:
            if not self._policy:
                raise Unsupported(
                    "jitp needs IOT_DEVICE_POLICY_NAME to be set", Concept.PROVISIONING
                )
            template = provisioning_template(self._policy, registry.thing_attributes)
        registered = registry.register_ca(
            CaRegistration(
                authority.record.certificate_pem, request.mode, request.auto_registration,
                verification, template,
            )
        )  # fmt: skip
        audit("aws-iot-registered", authority.record, iot_certificate_id=registered.certificate_id)
        endpoint = registry.data_endpoint()
        return IotCaRegistered(
            authority.fqdn, registered.certificate_id, registered.certificate_arn, request,
            endpoint, device_presents(request, endpoint),
        )  # fmt: skip

    def refuse_unless_available(self) -> None:
        self._available_registry()

    def _available_registry(self) -> IotRegistry:
        """The registry, or Unsupported (501) where there is no AWS IoT (the local backend)."""
        if self._registry is None or not self._registry.available:
            raise unsupported()
        return self._registry

    def register_devices(
        self, parent: Authority, issued: Sequence[IssuedCertificate], thing: bool
    ) -> list[IssuedCertificate]:
        """After the certificates are stored: a failure is reported on its device alone."""
        registry = self._available_registry()
        ca_pem = parent.record.certificate_pem
        registered = []
        for certificate in issued:
            record = certificate.record
            try:
                iot = registry.register_device(record.certificate_pem, ca_pem, thing)
                outcome = IotDeviceOutcome(
                    iot.certificate_id, iot.certificate_arn, record.device_id if thing else None
                )
            except IotRegistrationError as err:
                logger.warning("device %s is stored but not registered: %s", record.fqdn, err)
                outcome = IotDeviceOutcome(error=str(err))
            registered.append(IssuedCertificate(record, certificate.private_key_pem, outcome))
        return registered

    def forward_revocation(self, event: CertificateRevoked) -> int:
        """Each revoked generation's IoT certificate: REVOKED for a device or server, INACTIVE
        for a CA (AWS IoT's CA statuses); those never registered are skipped. Idempotent."""
        if self._registry is None:
            return 0
        status = policy_for(CertType(event.cert_type or CertType.CLIENT)).iot_revoked_status
        change = (
            self._registry.deactivate_ca
            if status == "INACTIVE"
            else self._registry.revoke_certificate
        )
        return sum(change(fingerprint) for fingerprint in event.fingerprints)


def refuse_ed25519(key_types: Sequence[KeyType], concept: Concept) -> None:
    if KeyType.ED25519 in key_types:
        raise InvalidRequest(concept, "ED25519 keys are not accepted by AWS IoT; use EC or RSA")

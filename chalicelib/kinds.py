"""One policy per kind of certificate: every rule that differs between a root, an intermediate,
a server and a device certificate lives here, and the rest of the code asks the policy.

A policy says which keys a kind takes, how long it lives by default, who may sign it, whether
the service keeps and returns its key, whether it is imported into ACM, how it is renewed, and
which X.509 profile it gets (chalicelib.pki builds the certificate from that profile).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from chalicelib import pki
from chalicelib.model import CertType, KeyType

ALL_KEY_TYPES = frozenset(KeyType)
CA_AND_SERVER_KEY_TYPES = ALL_KEY_TYPES - {KeyType.ED25519}
"""ED25519 is for device certificates only: ACM does not import it and CAs here sign with EC or
RSA, which every TLS stack and AWS IoT accept."""


@dataclass(frozen=True)
class ProfileInputs:
    """What a profile is made of besides the kind: the subject key's type, the names it covers,
    an intermediate's path length, and where its issuer's CRL is published."""

    key_type: KeyType
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    path_length: int | None = None
    crl_url: str | None = None


@dataclass(frozen=True)
class KindPolicy:
    cert_type: CertType
    signs_certificates: bool
    """A CA: it signs certificates and CRLs, is renewed with its own key, is revoked with
    everything below it, and its chain bundle starts with itself."""
    iot_revoked_status: str
    """What AWS IoT marks a revoked one: a device or server certificate REVOKED, a CA
    certificate INACTIVE (AWS IoT's CA statuses have no REVOKED)."""
    key_types: frozenset[KeyType]
    """Keys the kind takes, generated or from a CSR."""
    takes_csr: bool
    default_validity_days: int
    self_signed: bool
    """A root signs itself; every other kind is signed by a CA of this service."""
    returns_private_key: bool
    """A leaf's key is returned once at issuance and served by the private-key route; a CA's key
    is never returned or served."""
    encrypts_stored_key: bool
    """Stored encrypted with CA_KEY_PASSPHRASE when that is set (CAs)."""
    imported_into_acm: bool
    renewed_with_own_key: bool
    """A CA keeps its key when renewed, so that what it issued keeps verifying under it."""
    renewal_never_shortens: bool
    """A CA's renewal never ends before the generation it renews: everything the CA issued ends
    no later than that, so it stays covered."""
    common_name_is_device_id: bool

    def profile(self, inputs: ProfileInputs) -> pki.Profile:
        if self.cert_type is CertType.ROOT:
            return pki.root_profile()
        if self.cert_type is CertType.INTERMEDIATE:
            return pki.intermediate_profile(inputs.path_length or 0, inputs.crl_url)
        if self.cert_type is CertType.SERVER:
            return pki.server_profile(
                inputs.key_type, list(inputs.dns_names), list(inputs.ip_addresses), inputs.crl_url
            )
        return pki.device_profile(inputs.key_type, inputs.dns_names[0], inputs.crl_url)

    def allows_key(self, key_type: KeyType) -> bool:
        return key_type in self.key_types

    def key_type_rule(self) -> str:
        """Why a key type is refused, in the words of the rule."""
        allowed = ", ".join(sorted(key_type.value for key_type in self.key_types))
        return f"a {self.cert_type.value} certificate takes {allowed} keys"


ROOT = KindPolicy(
    cert_type=CertType.ROOT,
    signs_certificates=True,
    iot_revoked_status="INACTIVE",
    key_types=CA_AND_SERVER_KEY_TYPES,
    takes_csr=False,
    default_validity_days=3650,
    self_signed=True,
    returns_private_key=False,
    encrypts_stored_key=True,
    imported_into_acm=False,
    renewed_with_own_key=True,
    renewal_never_shortens=True,
    common_name_is_device_id=False,
)
INTERMEDIATE = KindPolicy(
    cert_type=CertType.INTERMEDIATE,
    signs_certificates=True,
    iot_revoked_status="INACTIVE",
    key_types=CA_AND_SERVER_KEY_TYPES,
    takes_csr=False,
    default_validity_days=1825,
    self_signed=False,
    returns_private_key=False,
    encrypts_stored_key=True,
    imported_into_acm=False,
    renewed_with_own_key=True,
    renewal_never_shortens=True,
    common_name_is_device_id=False,
)
SERVER = KindPolicy(
    cert_type=CertType.SERVER,
    signs_certificates=False,
    iot_revoked_status="REVOKED",
    key_types=CA_AND_SERVER_KEY_TYPES,
    takes_csr=True,
    default_validity_days=397,
    self_signed=False,
    returns_private_key=True,
    encrypts_stored_key=False,
    imported_into_acm=True,
    renewed_with_own_key=False,
    renewal_never_shortens=False,
    common_name_is_device_id=False,
)
DEVICE = KindPolicy(
    cert_type=CertType.CLIENT,
    signs_certificates=False,
    iot_revoked_status="REVOKED",
    key_types=ALL_KEY_TYPES,
    takes_csr=True,
    default_validity_days=365,
    self_signed=False,
    returns_private_key=True,
    encrypts_stored_key=False,
    imported_into_acm=False,
    renewed_with_own_key=False,
    renewal_never_shortens=False,
    common_name_is_device_id=True,
)
POLICIES = {policy.cert_type: policy for policy in (ROOT, INTERMEDIATE, SERVER, DEVICE)}


def policy_for(cert_type: CertType) -> KindPolicy:
    return POLICIES[cert_type]


def split_names(names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A server's names as (DNS names, IP addresses), each once, in the order given."""
    addresses, dns_names = [], []
    for name in dict.fromkeys(names):
        try:
            ipaddress.ip_address(name)
        except ValueError:
            dns_names.append(name)
        else:
            addresses.append(name)
    return tuple(dns_names), tuple(addresses)

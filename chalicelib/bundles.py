"""Certificate bundles and leaf private keys. A CA's key is never served, and no bundle ever
holds a revoked CA: the chain in a bundle is the one that stands now (chalicelib.authority)."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib import pki
from chalicelib.authority import Chain
from chalicelib.errors import Concept, Conflict, Forbidden, NotFound
from chalicelib.kinds import policy_for
from chalicelib.model import CertificateRecord
from chalicelib.pki_documents import pkcs12_bundle

BUNDLE_FORMATS = ("pem", "fullchain", "chain", "pkcs12")
PEM_TYPE = "application/x-pem-file"
PKCS12_TYPE = "application/x-pkcs12"


@dataclass(frozen=True)
class Bundle:
    content: bytes
    content_type: str
    filename: str


def leaf_private_key(record: CertificateRecord) -> str:
    if not policy_for(record.cert_type).returns_private_key:
        raise Forbidden(f"the private key of CA {record.fqdn} is never served")
    if record.private_key_pem is None:
        raise NotFound(
            f"no private key is stored for {record.fqdn}: it was issued from a CSR and the key "
            "never left the device"
        )
    return record.private_key_pem


def build_bundle(
    record: CertificateRecord, chain: Chain, bundle_format: str, password: str | None
) -> Bundle:
    """`chain`: the CAs above `record` as they stand now (for `chain` of a CA: the CA itself
    and those above it)."""
    if bundle_format == "pem":
        return Bundle(record.certificate_pem.encode(), PEM_TYPE, f"{record.fqdn}.pem")
    if chain.revoked is not None:
        raise Conflict(
            f"CA {chain.revoked.fqdn} was revoked on "
            f"{chain.revoked.revoked_at.strftime('%Y-%m-%dT%H:%M:%SZ')} ({chain.revoked.reason}): "
            f"no chain through it is served, and nothing below it is trusted any more",
            Concept.CERTIFICATE,
        )
    if bundle_format == "fullchain":
        content = (record.certificate_pem + chain.pem).encode()
        return Bundle(content, PEM_TYPE, f"{record.fqdn}.fullchain.pem")
    if bundle_format == "chain":
        return Bundle(chain.pem.encode(), PEM_TYPE, f"{record.fqdn}.chain.pem")
    if bundle_format != "pkcs12" or not password:  # the API refuses both before asking
        raise ValueError(f"no bundle {bundle_format!r} without a password")
    key = pki.load_trusted_private_key(leaf_private_key(record), None)
    certificates = [authority.signing.certificate for authority in chain.authorities]
    content = pkcs12_bundle(
        record.fqdn, key, pki.load_certificate(record.certificate_pem), certificates,
        password.encode(),
    )  # fmt: skip
    return Bundle(content, PKCS12_TYPE, f"{record.fqdn}.p12")


def chain_root_of_bundle(record: CertificateRecord, bundle_format: str) -> str:
    """Where the chain of a bundle starts: for `chain` of a CA (a relying party's trust bundle
    for what lies below it), the CA itself; otherwise the CA that issued the certificate."""
    if bundle_format == "chain" and policy_for(record.cert_type).signs_certificates:
        return record.fqdn
    return record.parent_fqdn

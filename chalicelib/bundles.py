"""Certificate bundles and leaf private keys. A CA's key is never served."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib import pki
from chalicelib.errors import Forbidden, InvalidRequest, NotFound
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
    if record.cert_type.is_ca:
        raise Forbidden(f"the private key of CA {record.fqdn} is never served")
    if record.private_key_pem is None:
        raise NotFound(
            f"no private key is stored for {record.fqdn}: it was issued from a CSR and the key "
            "never left the device"
        )
    return record.private_key_pem


def build_bundle(record: CertificateRecord, bundle_format: str, password: str | None) -> Bundle:
    if bundle_format == "pem":
        return Bundle(record.certificate_pem.encode(), PEM_TYPE, f"{record.fqdn}.pem")
    if bundle_format == "fullchain":
        content = (record.certificate_pem + record.chain_pem).encode()
        return Bundle(content, PEM_TYPE, f"{record.fqdn}.fullchain.pem")
    if bundle_format == "chain":
        return Bundle(trust_chain(record).encode(), PEM_TYPE, f"{record.fqdn}.chain.pem")
    if bundle_format != "pkcs12":
        raise InvalidRequest("format", f"must be one of {', '.join(BUNDLE_FORMATS)}")
    if not password:
        raise InvalidRequest(
            "password", "is required for pkcs12 (in the POST body or the X-Bundle-Password header)"
        )
    key = pki.load_trusted_private_key(leaf_private_key(record), None)
    chain = [pki.load_certificate(pem) for pem in _split_pem(record.chain_pem)]
    content = pkcs12_bundle(
        record.fqdn, key, pki.load_certificate(record.certificate_pem), chain, password.encode()
    )
    return Bundle(content, PKCS12_TYPE, f"{record.fqdn}.p12")


def trust_chain(record: CertificateRecord) -> str:
    """What a relying party trusts for what lies below: a CA's certificate then its issuers up
    to the root (a broker's CA file for every device under a cell, in one file); for a leaf,
    its issuers only, the CA certificates that its peer needs to verify it."""
    own = record.certificate_pem if record.cert_type.is_ca else ""
    return own + record.chain_pem


def _split_pem(pem: str) -> list[str]:
    end = "-----END CERTIFICATE-----"
    return [block + end + "\n" for block in pem.split(end) if block.strip()]

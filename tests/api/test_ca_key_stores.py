"""One contract over the three CA signers: a key kept as a document (`file`), a key in a SoftHSM2
token (`pkcs11`, local backend) and a key in AWS KMS (`kms`, AWS backend under moto).

On each, through the HTTP API: a root (EC P-384) with an RSA broker CA and an EC device CA and
cell below it; a server, a device, a bulk (large enough for the local signing pool), a device
from a CSR and a renewal; a CRL after a revocation; each CA renewed with its own key. Every
result is verified by `openssl verify -x509_strict -crl_check` (the issuer's CRL, as the service
signed it) and by cryptography's verifier; a held key's CA keeps no key anywhere but its store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.backends import Backend
from tests.helpers import ApiClient, assert_error, openssl, send, verify_client, verify_server

ROOT, SERVERS, DEVICES, CELL = (
    "example.com", "servers.example.com", "devices.example.com", "cell1.devices.example.com",
)  # fmt: skip
BROKER = "mqtt.servers.example.com"
CA_KEY_TYPES = {ROOT: "EC_P384", SERVERS: "RSA_2048", DEVICES: "EC_P256", CELL: "EC_P256"}
BULK = 40  # past the local signing pool's threshold (32): held keys sign in process


@pytest.fixture(scope="module")
def signer(key_store_backend: tuple[Backend, str]) -> tuple[Backend, str]:
    return key_store_backend


@pytest.fixture(scope="module")
def client(signer: tuple[Backend, str]) -> Any:
    from app import app

    backend, _ = signer
    with Client(app, stage_name="test") as chalice_client:
        yield ApiClient(chalice_client, backend)


@pytest.fixture(scope="module")
def cas(client: ApiClient, signer: tuple[Backend, str]) -> dict[str, dict[str, Any]]:
    """The hierarchy, every CA's key in the signer's store."""
    _, key_store = signer
    created = {ROOT: client.create("root", fqdn=ROOT, key_type=CA_KEY_TYPES[ROOT],
                                   key_store=key_store)}  # fmt: skip
    for fqdn, extra in ((SERVERS, {}), (DEVICES, {"path_length": 1}), (CELL, {})):
        created[fqdn] = client.create(
            "intermediate", fqdn=fqdn, key_type=CA_KEY_TYPES[fqdn], key_store=key_store, **extra
        )
    return created


def crl_of(client: ApiClient, ca: str, directory: Path) -> Path:
    response = send(client, "GET", f"/certificates/{ca}/crl?format=pem")
    assert response.status_code == 200, response.body
    body = response.body if isinstance(response.body, bytes) else str(response.body).encode()
    path = directory / f"{ca}.crl.pem"
    path.write_bytes(body)
    return path


def openssl_verify(
    client: ApiClient, issued: dict[str, Any], root_pem: str, directory: Path
) -> str:
    """`openssl verify -x509_strict -crl_check` of an issued certificate with its chain, trusting
    only the root, against its issuer's CRL as the service serves it now; its output."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "root.pem").write_text(root_pem)
    (directory / "chain.pem").write_text(issued["chain"])
    (directory / "leaf.pem").write_text(issued["certificate"])
    crl = crl_of(client, issued["parent_fqdn"], directory)
    result = openssl(
        "verify", "-x509_strict", "-crl_check", "-CAfile", directory / "root.pem",
        "-untrusted", directory / "chain.pem", "-CRLfile", crl, directory / "leaf.pem",
    )  # fmt: skip
    return result.stdout + result.stderr


def assert_verifies(
    client: ApiClient, issued: dict[str, Any], root_pem: str, directory: Path
) -> None:
    output = openssl_verify(client, issued, root_pem, directory)
    assert output.strip().endswith(": OK"), output
    if issued["type"] == "Server":
        verify_server(issued, root_pem, issued["fqdn"])
    else:
        verify_client(issued, root_pem)


def test_every_ca_key_is_made_and_kept_in_its_store(
    client: ApiClient, signer: tuple[Backend, str], cas: dict[str, dict[str, Any]]
) -> None:
    backend, key_store = signer
    for fqdn, created in cas.items():
        assert "private_key" not in created
        shown = client.get(f"/certificates/{fqdn}").body
        assert shown["key_store"] == key_store, fqdn
        assert "private_key" not in shown
        stored = json.loads(backend.object_bytes(fqdn))
        certificate = x509.load_pem_x509_certificate(shown["certificate"].encode())
        if key_store == "file":
            assert shown["key_id"] is None
            key = serialization.load_pem_private_key(stored["private_key"].encode(), None)
            assert key.public_key() == certificate.public_key()
        else:
            assert shown["key_id"] and stored["key_id"] == shown["key_id"], fqdn
            assert stored["key_store"] == key_store
            assert stored["private_key"] is None, fqdn
            assert b"PRIVATE KEY" not in backend.object_bytes(fqdn)


def test_what_each_store_signs_verifies(
    client: ApiClient, cas: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    root_pem = cas[ROOT]["certificate"]
    server = client.create("server", fqdn=BROKER, sans=["localhost"])
    device = client.create("device", parent_fqdn=CELL)
    bulk = client.post("/certificates/device", {"parent_fqdn": CELL, "count": BULK})
    assert bulk.status_code == 201, bulk.body
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "on-device")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    from_csr = client.create("device", parent_fqdn=CELL, csr=csr)
    renewed = client.post(f"/certificates/{device['fqdn']}/renew", {})
    assert renewed.status_code == 201, renewed.body

    devices = [{**item, "chain": bulk.body["chain"]} for item in bulk.body["items"]]
    assert len(devices) == BULK
    checked = {"server": server, "device": device, "first": devices[0], "last": devices[-1],
               "csr": from_csr, "renewed": renewed.body}  # fmt: skip
    for name, issued in checked.items():
        assert_verifies(client, issued, root_pem, tmp_path / name)
    assert x509.load_pem_x509_certificate(from_csr["certificate"].encode()).public_key() == (
        key.public_key()
    )
    assert len({issued["serial"] for issued in devices}) == BULK


def test_a_revocation_is_in_the_crl_its_ca_signed(
    client: ApiClient, cas: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    root_pem = cas[ROOT]["certificate"]
    revoked, kept = (client.create("device", parent_fqdn=CELL) for _ in range(2))
    response = client.post(f"/certificates/{revoked['fqdn']}/revoke", {"reason": "keyCompromise"})
    assert response.status_code == 200, response.body

    crl = x509.load_pem_x509_crl(crl_of(client, CELL, tmp_path).read_bytes())
    cell = x509.load_pem_x509_certificate(cas[CELL]["certificate"].encode())
    assert crl.is_signature_valid(cell.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(int(revoked["serial"], 16)) is not None
    assert "certificate revoked" in openssl_verify(client, revoked, root_pem, tmp_path / "revoked")
    assert_verifies(client, kept, root_pem, tmp_path / "kept")


def test_a_ca_renewed_with_its_own_key_in_its_store(
    client: ApiClient, cas: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    before = client.create("device", parent_fqdn=CELL)
    renewed = {}
    for fqdn in (ROOT, CELL):
        response = client.post(f"/certificates/{fqdn}/renew", {})
        assert response.status_code == 201, response.body
        renewed[fqdn] = response.body
        old, new = (
            x509.load_pem_x509_certificate(pem.encode())
            for pem in (cas[fqdn]["certificate"], response.body["certificate"])
        )
        assert new.public_key() == old.public_key()
        assert new.serial_number != old.serial_number
        assert client.get(f"/certificates/{fqdn}").body["key_id"] == cas[fqdn]["key_id"]
    root_pem = renewed[ROOT]["certificate"]
    after = client.create("device", parent_fqdn=CELL)
    assert after["chain"].startswith(renewed[CELL]["certificate"])
    earlier = client.get(f"/certificates/{before['fqdn']}").body  # with the chain as it is now
    for name, issued in (("issued before", earlier), ("issued after", after)):
        assert_verifies(client, issued, root_pem, tmp_path / name)


def test_a_store_the_deployment_does_not_offer_is_refused(
    client: ApiClient, signer: tuple[Backend, str]
) -> None:
    backend, key_store = signer
    absent = "pkcs11" if key_store == "kms" else "kms"
    before = backend.snapshot()
    response = client.post("/certificates/root", {"fqdn": "other.org", "key_store": absent})
    message = assert_error(response, 400, "key_store", f"{absent} is not offered")
    assert "file" in message
    unknown = client.post("/certificates/root", {"fqdn": "other.org", "key_store": "vault"})
    assert_error(unknown, 400, "key_store", "must be one of file, kms, pkcs11")
    ed25519 = client.post(
        "/certificates/root", {"fqdn": "other.org", "key_store": key_store, "key_type": "ED25519"}
    )
    assert_error(ed25519, 400, "key_type", "ED25519")
    assert backend.snapshot() == before

"""Revocation proven where it matters: a TLS server checking the CRL refuses a revoked device.

The hierarchy is issued through the HTTP API: root example.com; servers.example.com with the
server mqtt.servers.example.com; devices.example.com (path_length 1) with cell1 under it and two
devices of cell1, `revoked` (revoked for keyCompromise) and `sibling`. The server trusts only the
root, with VERIFY_X509_STRICT, and loads cell1's CRL as the API serves it. Two controls show it is
the CRL that refuses the device: without VERIFY_CRL_CHECK_LEAF the revoked device gets in, and
with the check on but no CRL loaded every device is refused.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers import CELL1, ROOT, ApiClient, create_hierarchy, load_pem_chain
from tests.servers import LocalServer
from tests.tls import (
    CLIENT_MESSAGE,
    SERVER,
    SERVER_REPLY,
    TLS_VERSIONS,
    Credentials,
    Outcome,
    assert_failed,
    client_context,
    common_name,
    handshake,
    openssl_path,
    run_openssl,
    write_credentials,
)

# OpenSSL's X509_V_ERR_* codes.
UNABLE_TO_GET_CRL = 3
CERTIFICATE_REVOKED = 23
REQUEST_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class RevocationPki:
    directory: Path
    root_pem: str
    crl_pem: str
    server: Credentials
    revoked: Credentials
    sibling: Credentials
    revoked_response: dict[str, Any]
    sibling_response: dict[str, Any]

    @property
    def crl(self) -> x509.CertificateRevocationList:
        return x509.load_pem_x509_crl(self.crl_pem.encode())

    def trust_file(self, name: str, *, with_crl: bool) -> Path:
        """The root, and cell1's CRL when asked: one PEM file for `load_verify_locations`."""
        path = self.directory / name
        path.write_text(self.root_pem + (self.crl_pem if with_crl else ""))
        return path


@pytest.fixture
def revocation_pki(api: ApiClient, tmp_path: Path) -> RevocationPki:
    hierarchy = create_hierarchy(api)
    server = api.create("server", fqdn=SERVER)
    revoked = api.create("device", parent_fqdn=CELL1)
    sibling = api.create("device", parent_fqdn=CELL1)
    revocation = api.post(f"/certificates/{revoked['fqdn']}/revoke", {"reason": "keyCompromise"})
    assert revocation.status_code == 200, revocation.body
    assert revocation.body["status"] == "revoked"
    response = api.get(f"/certificates/{CELL1}/crl?format=pem")
    assert response.status_code == 200, response.body
    assert isinstance(response.body, bytes)  # not JSON: the test client hands back the raw PEM
    crl_pem = response.body.decode("ascii")
    assert crl_pem.startswith("-----BEGIN X509 CRL-----\n")
    return RevocationPki(
        directory=tmp_path,
        root_pem=hierarchy[ROOT]["certificate"],
        crl_pem=crl_pem,
        server=write_credentials(server, tmp_path, "server"),
        revoked=write_credentials(revoked, tmp_path, "revoked"),
        sibling=write_credentials(sibling, tmp_path, "sibling"),
        revoked_response=revoked,
        sibling_response=sibling,
    )


def test_cell_crl_lists_the_revoked_device_only(revocation_pki: RevocationPki) -> None:
    crl = revocation_pki.crl
    cell = load_pem_chain(revocation_pki.revoked_response["chain"])[0]
    assert cell.subject.rfc4514_string() == f"CN={CELL1}"
    assert crl.issuer == cell.subject
    assert crl.is_signature_valid(cell.public_key())
    revoked_serial = revocation_pki.revoked.certificate.serial_number
    assert [entry.serial_number for entry in crl] == [revoked_serial]
    entry = crl.get_revoked_certificate_by_serial_number(revoked_serial)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    sibling_serial = revocation_pki.sibling.certificate.serial_number
    assert crl.get_revoked_certificate_by_serial_number(sibling_serial) is None


# Python's ssl: the server checks the device's certificate against cell1's CRL -----------------


def crl_checking_server(
    version: ssl.TLSVersion, pki: RevocationPki, *, with_crl: bool, check_leaf: bool
) -> ssl.SSLContext:
    """Like the mutual-TLS server, trusting the root; the CRL goes in through a cafile, since
    `cadata` loads certificates only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = version
    context.maximum_version = version
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    if check_leaf:
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.load_verify_locations(cafile=pki.trust_file("trust.pem", with_crl=with_crl))
    context.load_cert_chain(pki.server.cert_chain_file, pki.server.key_file)
    assert context.cert_store_stats() == {"x509": 1, "crl": int(with_crl), "x509_ca": 1}
    assert not context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    assert bool(context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF) is check_leaf
    return context


def connect_device(
    version: ssl.TLSVersion, pki: RevocationPki, device: Credentials, server: ssl.SSLContext
) -> tuple[Outcome, Outcome]:
    return handshake(server, client_context(version, device, pki.root_pem), SERVER)


def assert_accepted(server: Outcome, client: Outcome, device: Credentials) -> None:
    """The handshake completed, data went both ways, and the server saw exactly this device."""
    assert server.error is None, server.error
    assert client.error is None, client.error
    assert server.received == CLIENT_MESSAGE
    assert client.received == SERVER_REPLY + CLIENT_MESSAGE
    assert server.peer_der == device.certificate.public_bytes(Encoding.DER)
    assert common_name(client.peer) == SERVER


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_sibling_device_is_accepted_with_the_crl_checked(
    revocation_pki: RevocationPki, version: ssl.TLSVersion
) -> None:
    server, client = connect_device(
        version,
        revocation_pki,
        revocation_pki.sibling,
        crl_checking_server(version, revocation_pki, with_crl=True, check_leaf=True),
    )
    assert_accepted(server, client, revocation_pki.sibling)
    assert server.version == client.version == version.name.replace("v1_", "v1.")


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_revoked_device_is_refused_with_the_crl_checked(
    revocation_pki: RevocationPki, version: ssl.TLSVersion
) -> None:
    server, client = connect_device(
        version,
        revocation_pki,
        revocation_pki.revoked,
        crl_checking_server(version, revocation_pki, with_crl=True, check_leaf=True),
    )
    assert_failed(server, client)
    assert isinstance(server.error, ssl.SSLCertVerificationError), server.error
    assert server.error.verify_code == CERTIFICATE_REVOKED, server.error
    assert server.error.verify_message == "certificate revoked"
    assert "certificate revoked" in str(server.error)
    assert server.events == []


@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_revoked_device_is_accepted_when_the_crl_is_not_checked(
    revocation_pki: RevocationPki, version: ssl.TLSVersion
) -> None:
    """Negative control: the same server and CRL without VERIFY_CRL_CHECK_LEAF let it in."""
    server, client = connect_device(
        version,
        revocation_pki,
        revocation_pki.revoked,
        crl_checking_server(version, revocation_pki, with_crl=True, check_leaf=False),
    )
    assert_accepted(server, client, revocation_pki.revoked)


@pytest.mark.parametrize("device", ["sibling", "revoked"])
@pytest.mark.parametrize("version", TLS_VERSIONS)
def test_crl_check_without_a_crl_refuses_every_device(
    revocation_pki: RevocationPki, version: ssl.TLSVersion, device: str
) -> None:
    """Negative control: the check is really on, and it is cell1's CRL that satisfies it."""
    credentials: Credentials = getattr(revocation_pki, device)
    server, client = connect_device(
        version,
        revocation_pki,
        credentials,
        crl_checking_server(version, revocation_pki, with_crl=False, check_leaf=True),
    )
    assert_failed(server, client)
    assert isinstance(server.error, ssl.SSLCertVerificationError), server.error
    assert server.error.verify_code == UNABLE_TO_GET_CRL, server.error
    assert server.error.verify_message == "unable to get certificate CRL"


# The openssl command line agrees ----------------------------------------------------------------


def test_openssl_verify_with_crl_check_refuses_the_revoked_device_only(
    revocation_pki: RevocationPki,
) -> None:
    pki = revocation_pki
    openssl_path()
    trust = pki.trust_file("root-and-crl.pem", with_crl=True)
    # The intermediates only (cell1, devices.example.com): trust comes from the root alone.
    intermediates = pki.directory / "intermediates.pem"
    intermediates.write_text(
        "".join(
            certificate.public_bytes(Encoding.PEM).decode("ascii")
            for certificate in load_pem_chain(pki.revoked_response["chain"])[:-1]
        )
    )
    leaves = {}
    for name in ("revoked", "sibling"):
        leaves[name] = pki.directory / f"{name}-leaf.pem"
        leaves[name].write_text(getattr(pki, f"{name}_response")["certificate"])

    def verify(leaf: Path, *checks: str) -> subprocess.CompletedProcess[str]:
        return run_openssl(
            "verify", "-x509_strict", *checks, "-CAfile", trust, "-untrusted", intermediates, leaf
        )

    sibling = verify(leaves["sibling"], "-crl_check")
    assert sibling.returncode == 0, sibling.stdout + sibling.stderr
    assert sibling.stdout.strip() == f"{leaves['sibling']}: OK"

    revoked = verify(leaves["revoked"], "-crl_check")
    assert revoked.returncode != 0, revoked.stdout
    assert f"error {CERTIFICATE_REVOKED} at 0 depth lookup: certificate revoked" in (
        revoked.stdout + revoked.stderr
    )

    unchecked = verify(leaves["revoked"])  # negative control: no CRL check, no refusal
    assert unchecked.returncode == 0, unchecked.stdout + unchecked.stderr
    assert unchecked.stdout.strip() == f"{leaves['revoked']}: OK"


def test_openssl_verifies_the_crl_signature(revocation_pki: RevocationPki) -> None:
    pki = revocation_pki
    openssl_path()
    crl_file = pki.directory / "cell1.crl.pem"
    crl_file.write_text(pki.crl_pem)
    issuers = pki.directory / "chain.pem"
    issuers.write_text(pki.revoked_response["chain"])  # cell1, devices.example.com, root

    checked = run_openssl("crl", "-in", crl_file, "-CAfile", issuers, "-noout", "-verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stderr.strip() == "verify OK"

    # Negative control: the same CRL with the last byte of its signature flipped. OpenSSL 3.0
    # reports the failure but still exits 0, so its message is what counts.
    der = bytearray(pki.crl.public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    corrupted_file = pki.directory / "cell1.corrupted.crl.der"
    corrupted_file.write_bytes(bytes(der))
    corrupted = run_openssl(
        "crl", "-inform", "DER", "-in", corrupted_file, "-CAfile", issuers, "-noout", "-verify"
    )
    assert corrupted.stderr.strip() == "verify failure", corrupted.stderr
    # Negative control: trusting the root alone, the CRL's issuer (cell1) is unknown.
    root_only_file = pki.trust_file("root.pem", with_crl=False)
    root_only = run_openssl("crl", "-in", crl_file, "-CAfile", root_only_file, "-noout", "-verify")
    assert root_only.returncode != 0
    assert "Error getting CRL issuer certificate" in root_only.stdout + root_only.stderr


# Over a real `chalice local` server: the DER CRL survives HTTP as bytes -------------------------


def _post(server: LocalServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(f"{server.url}{path}", json=body, timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.mark.slow
def test_crl_over_a_real_local_server_in_der_and_pem(local_server: LocalServer) -> None:
    root = _post(local_server, "/certificates/root", {"fqdn": ROOT})
    cell = _post(local_server, "/certificates/intermediate", {"fqdn": "servers.example.com"})
    _post(local_server, "/certificates/servers.example.com/revoke", {"reason": "superseded"})
    root_certificate = x509.load_pem_x509_certificate(root["certificate"].encode())
    serial = x509.load_pem_x509_certificate(cell["certificate"].encode()).serial_number

    crls = {}
    for crl_format, loader in (("der", x509.load_der_x509_crl), ("pem", x509.load_pem_x509_crl)):
        response = requests.get(
            f"{local_server.url}/certificates/{ROOT}/crl",
            params={"format": crl_format},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        assert response.status_code == 200, response.text
        crls[crl_format] = (response, loader(response.content))

    der_response, der_crl = crls["der"]
    assert der_response.headers["Content-Type"] == "application/pkix-crl"
    assert der_response.content[:1] == b"\x30"  # an ASN.1 SEQUENCE, not base64 or text
    pem_response, pem_crl = crls["pem"]
    assert pem_response.headers["Content-Type"].startswith("application/x-pem-file")
    assert pem_response.text.startswith("-----BEGIN X509 CRL-----")
    for crl in (der_crl, pem_crl):
        assert crl.issuer == root_certificate.subject
        assert crl.is_signature_valid(root_certificate.public_key())
        assert [entry.serial_number for entry in crl] == [serial]
        entry = crl.get_revoked_certificate_by_serial_number(serial)
        assert entry is not None
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        assert reason is x509.ReasonFlags.superseded

"""Renewals seen by real TLS stacks: a CA renewed with its key still anchors what it issued, and a
superseded generation is refused by `openssl verify -crl_check` while its successor is accepted."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from tests.helpers import CELL1, ROOT, ApiClient, create_hierarchy
from tests.tls import (
    CLIENT_MESSAGE,
    SERVER_REPLY,
    client_context,
    common_name,
    handshake,
    run_openssl,
    server_context,
    write_credentials,
)

SERVER = "mqtt.servers.example.com"
CERTIFICATE_REVOKED = 23  # X509_V_ERR_CERT_REVOKED


def renewed(api: ApiClient, fqdn: str, **body: Any) -> dict[str, Any]:
    response = api.post(f"/certificates/{fqdn}/renew", body)
    assert response.status_code == 201, response.body
    return response.body


def test_after_a_root_rollover_the_new_root_alone_anchors_the_old_server_and_device(
    api: ApiClient, tmp_path: Path
) -> None:
    create_hierarchy(api)
    server = write_credentials(api.create("server", fqdn=SERVER), tmp_path, "server")
    issued_device = api.create("device", parent_fqdn=CELL1)
    device = write_credentials(issued_device, tmp_path, "device")

    new_root = renewed(api, ROOT, validity_days=7300)["certificate"]

    version = ssl.TLSVersion.TLSv1_3
    server_side, client_side = handshake(
        server_context(version, server, new_root), client_context(version, device, new_root), SERVER
    )
    assert server_side.error is None and client_side.error is None, (server_side, client_side)
    assert server_side.received == CLIENT_MESSAGE
    assert client_side.received == SERVER_REPLY + CLIENT_MESSAGE
    assert common_name(server_side.peer) == issued_device["device_id"]


def test_a_device_presenting_the_renewed_cell_certificate_is_accepted(
    api: ApiClient, tmp_path: Path
) -> None:
    hierarchy = create_hierarchy(api)
    issued_device = api.create("device", parent_fqdn=CELL1)
    new_cell = renewed(api, CELL1)
    device = write_credentials(
        {**issued_device, "chain": new_cell["certificate"] + new_cell["chain"]}, tmp_path, "device"
    )
    server = write_credentials(api.create("server", fqdn=SERVER), tmp_path, "server")
    root = hierarchy[ROOT]["certificate"]

    version = ssl.TLSVersion.TLSv1_2
    server_side, client_side = handshake(
        server_context(version, server, root), client_context(version, device, root), SERVER
    )
    assert server_side.error is None and client_side.error is None, (server_side, client_side)
    assert common_name(server_side.peer) == issued_device["device_id"]


def test_openssl_refuses_the_superseded_generation_and_accepts_its_successor(
    api: ApiClient, tmp_path: Path
) -> None:
    hierarchy = create_hierarchy(api)
    first = api.create("device", parent_fqdn=CELL1)
    second = renewed(api, first["fqdn"], revoke_previous=True)
    crl_pem = api.chalice_client.http.get(f"/certificates/{CELL1}/crl?format=pem").body
    trust = tmp_path / "root-and-crl.pem"
    trust.write_text(hierarchy[ROOT]["certificate"] + crl_pem.decode())
    intermediates = tmp_path / "intermediates.pem"
    intermediates.write_text(second["chain"])

    def verify(issued: dict[str, Any], name: str) -> Any:
        leaf = tmp_path / f"{name}.pem"
        leaf.write_text(issued["certificate"])
        return leaf, run_openssl(
            "verify", "-x509_strict", "-crl_check", "-CAfile", trust, "-untrusted", intermediates,
            leaf,
        )  # fmt: skip

    leaf, accepted = verify(second, "second")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert accepted.stdout.strip() == f"{leaf}: OK"
    _, refused = verify(first, "first")
    assert refused.returncode != 0, refused.stdout
    assert f"error {CERTIFICATE_REVOKED} at 0 depth lookup: certificate revoked" in (
        refused.stdout + refused.stderr
    )

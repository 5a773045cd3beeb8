"""Deleting revoked certificates (`DELETE /certificates/{fqdn}`, `?cascade=true` for a CA with
what it issued), on both backends: what goes (documents, inventory items), what stays (the
revocations, so that the parent's CRL still lists them and openssl still refuses a device of a
deleted cell), and what is refused (a certificate not revoked, a CA with certificates unless
cascading, a deleted name under the same CA). AWS IoT's side is in tests/api/test_aws_iot.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from chalicelib import wiring
from chalicelib.config import load_settings
from chalicelib.errors import CaRevoked, NotFound
from chalicelib.model import CertType, IssueRequest
from tests.backends import Backend, LocalBackend
from tests.helpers import (
    CELL1,
    CELL2,
    DEVICE_CA_PARENT,
    ROOT,
    ApiClient,
    assert_rejected,
    create_hierarchy,
    openssl,
)


def crl(api: ApiClient, ca: str) -> x509.CertificateRevocationList:
    response = api.chalice_client.http.get(f"/certificates/{ca}/crl", headers={"Accept": "*/*"})
    assert response.status_code == 200, response.body
    return x509.load_der_x509_crl(response.body)


def crl_serials(api: ApiClient, ca: str) -> set[int]:
    return {entry.serial_number for entry in crl(api, ca)}


def stored_keys(backend: Backend) -> set[str]:
    """The documents there are now (S3: current versions only)."""
    if isinstance(backend, LocalBackend):
        return {
            str(path.relative_to(backend.directory)) for path in backend.directory.rglob("*.json")
        }
    listed = backend.s3.list_objects_v2(Bucket=backend.bucket).get("Contents", [])
    return {entry["Key"] for entry in listed}


def listed(api: ApiClient, query: str) -> list[str]:
    response = api.get(f"/certificates?{query}")
    assert response.status_code == 200, response.body
    return [item["fqdn"] for item in response.body["items"]]


def pem_file(path: Path, *pems: str) -> Path:
    path.write_text("".join(pems))
    return path


def test_deleting_a_revoked_cell_removes_its_subtree_and_keeps_its_revocation(
    backend: Backend, backend_api: ApiClient, tmp_path: Path
) -> None:
    api = backend_api
    pki = create_hierarchy(api)
    bulk = api.post("/certificates/device", {"parent_fqdn": CELL1, "count": 4}).body["items"]
    renewed = api.create("device", parent_fqdn=CELL1)
    assert api.post(f"/certificates/{renewed['fqdn']}/renew", {}).status_code == 201
    devices = [device["fqdn"] for device in bulk] + [renewed["fqdn"]]
    other = api.create("device", parent_fqdn=CELL2)  # another cell: untouched
    assert_rejected(api, backend, "DELETE", f"/certificates/{CELL1}?cascade=true",
                    status=409, field="certificate", contains="is not revoked")  # fmt: skip
    assert api.post(f"/certificates/{CELL1}/revoke", {"reason": "keyCompromise"}).status_code == 200
    cached_cell_crl = crl(api, CELL1).public_bytes(Encoding.PEM).decode()  # a relying party's
    kept = stored_keys(backend)
    cell_keys = {key for key in kept if CELL1 in key and "revocations/" not in key}
    assert len(cell_keys) == 7  # the cell, five devices, one renewal
    assert_rejected(api, backend, "DELETE", f"/certificates/{CELL1}",
                    status=409, field="certificate", contains="cascade=true")  # fmt: skip
    assert_rejected(api, backend, "DELETE", f"/certificates/{CELL1}?cascade=yes",
                    field="cascade", contains="true or false")  # fmt: skip

    deleted = api.delete(f"/certificates/{CELL1}?cascade=true")

    assert deleted.status_code == 200, deleted.body
    assert deleted.body["fqdn"] == CELL1 and deleted.body["deleted"] == 6
    assert stored_keys(backend) == {key for key in kept if key not in cell_keys}
    assert listed(api, f"parent={DEVICE_CA_PARENT}") == [CELL2]
    assert api.get(f"/certificates?parent={CELL1}").status_code == 404
    for fqdn in [CELL1, *devices]:
        assert api.get(f"/certificates/{fqdn}").status_code == 404, fqdn
    expiring = api.get("/certificates/expiring?within_days=36500").body["items"]
    assert not {item["fqdn"] for item in expiring} & {CELL1, *devices}
    assert api.get(f"/certificates/{other['fqdn']}").body["status"] == "active"
    # the parent's CRL still lists the cell; openssl still refuses a device of it
    assert int(pki[CELL1]["serial"], 16) in crl_serials(api, DEVICE_CA_PARENT)
    crls = "".join(
        crl(api, ca).public_bytes(Encoding.PEM).decode() for ca in (ROOT, DEVICE_CA_PARENT)
    )
    verdict = openssl(
        "verify", "-crl_check_all",
        "-CAfile", pem_file(tmp_path / "root.pem", pki[ROOT]["certificate"]),
        "-untrusted", pem_file(tmp_path / "chain.pem", pki[CELL1]["certificate"],
                               pki[DEVICE_CA_PARENT]["certificate"]),
        "-CRLfile", pem_file(tmp_path / "crls.pem", crls, cached_cell_crl),
        pem_file(tmp_path / "device.pem", bulk[0]["certificate"]),
    )  # fmt: skip
    assert verdict.returncode != 0
    assert "certificate revoked" in verdict.stdout + verdict.stderr
    # the name is spent under its CA; deleting it again finds nothing
    assert_rejected(api, backend, "POST", "/certificates/intermediate", {"fqdn": CELL1},
                    status=409, field="fqdn", contains="revoked and deleted")  # fmt: skip
    assert_rejected(api, backend, "DELETE", f"/certificates/{CELL1}?cascade=true",
                    status=404, field="certificate")  # fmt: skip


def test_a_device_revoked_through_its_cell_stays_on_the_cells_crl_once_deleted(
    backend_api: ApiClient,
) -> None:
    api = backend_api
    create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)
    active = api.create("device", parent_fqdn=CELL2)
    assert api.post(f"/certificates/{CELL1}/revoke", {}).status_code == 200
    assert int(device["serial"], 16) in crl_serials(api, CELL1)  # listed from the inventory

    deleted = api.delete(f"/certificates/{device['fqdn']}")

    assert deleted.status_code == 200, deleted.body
    assert deleted.body["deleted"] == 1
    assert api.get(f"/certificates/{device['fqdn']}").status_code == 404
    assert listed(api, f"parent={CELL1}") == []
    assert int(device["serial"], 16) in crl_serials(api, CELL1)  # now from its own revocation
    refused = api.delete(f"/certificates/{active['fqdn']}")
    assert refused.status_code == 409, refused.body
    assert api.get(f"/certificates/{active['fqdn']}").body["status"] == "active"


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_deleted_server_name_is_not_issued_again_under_its_ca(
    backend: Backend, backend_api: ApiClient
) -> None:
    api = backend_api
    create_hierarchy(api)
    server = api.create("server", fqdn="mqtt.servers.example.com")
    assert api.post(f"/certificates/{server['fqdn']}/revoke", {}).status_code == 200
    assert api.delete(f"/certificates/{server['fqdn']}").status_code == 200
    before = stored_keys(backend)

    again: Any = api.post("/certificates/server", {"fqdn": server["fqdn"]})

    assert again.status_code == 409, again.body
    assert "revoked and deleted under CA servers.example.com" in again.body["Message"]
    assert stored_keys(backend) == before  # what the look found spent was removed again


@pytest.mark.parametrize("backend", ["local"], indirect=True)
def test_a_deleted_ca_is_gone_for_another_worker_that_knew_it(
    backend: Backend, backend_api: ApiClient
) -> None:
    """Another server worker has the cell in its cache: once deleted, it serves no CRL of it,
    and issues nothing under it (the cell was revoked first)."""
    api = backend_api
    create_hierarchy(api)
    other = wiring.build_service(load_settings())  # another worker, on the same store
    other.certificate_revocation_list(CELL1)  # knows the cell now
    assert api.post(f"/certificates/{CELL1}/revoke", {}).status_code == 200
    assert api.delete(f"/certificates/{CELL1}?cascade=true").status_code == 200

    with pytest.raises(NotFound):
        other.certificate_revocation_list(CELL1)
    with pytest.raises(CaRevoked):
        other.create_device(IssueRequest(CertType.CLIENT, parent_fqdn=CELL1))
    assert api.get(f"/certificates/{CELL1}/crl").status_code == 404
    assert stored_keys(backend) == {
        key for key in stored_keys(backend) if CELL1 not in key or "revocations/" in key
    }

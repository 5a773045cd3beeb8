"""With PUBLIC_BASE_URL set, every certificate below a root names its issuer's CRL, and that URL's
path is the route that serves it; without it, no certificate carries a distribution point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client
from cryptography import x509

from chalicelib import wiring
from tests.helpers import CELL1, DEVICE_CA_PARENT, ROOT, SERVER_CA, ApiClient, create_hierarchy

BASE = "https://pki.example.net/api"


@pytest.fixture
def published_api(certstore: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiClient]:
    monkeypatch.setenv("PUBLIC_BASE_URL", BASE + "/")  # a trailing slash is dropped
    wiring.reset()
    from app import app

    with Client(app, stage_name="test") as client:
        yield ApiClient(client)


def distribution_points(issued: dict[str, Any]) -> list[str] | None:
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    try:
        extension = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    except x509.ExtensionNotFound:
        return None
    assert extension.critical is False
    return [name.value for point in extension.value for name in point.full_name or []]


def test_each_certificate_below_a_root_names_its_issuers_crl(published_api: ApiClient) -> None:
    hierarchy = create_hierarchy(published_api)
    server = published_api.create("server", fqdn=f"mqtt.{SERVER_CA}")
    device = published_api.create("device", parent_fqdn=CELL1)
    bulk = published_api.post("/certificates/device", {"parent_fqdn": CELL1, "count": 3}).body

    assert distribution_points(hierarchy[ROOT]) is None
    expected = {
        SERVER_CA: ROOT, DEVICE_CA_PARENT: ROOT, CELL1: DEVICE_CA_PARENT,
    }  # fmt: skip
    for fqdn, issuer in expected.items():
        assert distribution_points(hierarchy[fqdn]) == [f"{BASE}/certificates/{issuer}/crl"]
    assert distribution_points(server) == [f"{BASE}/certificates/{SERVER_CA}/crl"]
    for issued in (device, *bulk["items"]):
        assert distribution_points(issued) == [f"{BASE}/certificates/{CELL1}/crl"]


def test_the_distribution_point_serves_the_issuers_crl(published_api: ApiClient) -> None:
    hierarchy = create_hierarchy(published_api)
    device = published_api.create("device", parent_fqdn=CELL1)
    published_api.post(f"/certificates/{device['fqdn']}/revoke", {"reason": "keyCompromise"})

    (url,) = distribution_points(device) or []
    response = published_api.chalice_client.http.get(
        url.removeprefix(BASE), headers={"Accept": "*/*"}
    )

    assert response.status_code == 200
    crl = x509.load_der_x509_crl(response.body)
    issuer = x509.load_pem_x509_certificate(hierarchy[CELL1]["certificate"].encode())
    assert crl.is_signature_valid(issuer.public_key())
    serial = int(device["serial"], 16)
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_without_a_public_base_url_no_certificate_carries_one(api: ApiClient) -> None:
    hierarchy = create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)

    assert all(distribution_points(issued) is None for issued in (*hierarchy.values(), device))


def test_a_public_base_url_that_is_no_url_is_refused(
    certstore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.config import ConfigurationError, load_settings

    monkeypatch.setenv("PUBLIC_BASE_URL", "pki.example.net/crls?x=1")
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL"):
        load_settings()

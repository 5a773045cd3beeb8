"""Inputs at the edges of the rules: each gets a 4xx, never a 500, and writes nothing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from cryptography import x509

from chalicelib.api.fields import MAX_BULK_BY_KEY_TYPE
from tests.helpers import ApiClient, create_hierarchy, snapshot_certstore

LONGEST_FQDN = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters: valid, never storable


def test_a_valid_name_too_long_for_any_certificate_is_not_found(
    api: ApiClient, certstore: Path
) -> None:
    create_hierarchy(api)
    assert len(LONGEST_FQDN) == 253
    before = snapshot_certstore(certstore)
    for path in (f"/certificates/{LONGEST_FQDN}", f"/certificates?parent={LONGEST_FQDN}"):
        response = api.get(path)
        assert response.status_code == 404, response.body
    assert snapshot_certstore(certstore) == before


def test_deeply_nested_json_is_a_400(api: ApiClient, certstore: Path) -> None:
    create_hierarchy(api)
    before = snapshot_certstore(certstore)
    response = api.post("/certificates/root", "[" * 60_000)
    assert response.status_code == 400
    assert response.body["Message"].startswith("body:")
    assert snapshot_certstore(certstore) == before


def test_a_forged_page_token_with_a_bad_name_is_a_400(api: ApiClient) -> None:
    create_hierarchy(api)
    payload = json.dumps({"p": "Root", "a": "x" * 2000}).encode()
    token = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    response = api.get(f"/certificates?next_token={token}")
    assert response.status_code == 400
    assert response.body["Message"].startswith("next_token:")


def test_bulk_rsa_2048_is_capped_at_its_limit(api: ApiClient, certstore: Path) -> None:
    create_hierarchy(api)
    before = snapshot_certstore(certstore)
    response = api.post(
        "/certificates/device",
        {
            "parent_fqdn": "cell1.devices.example.com",
            "count": MAX_BULK_BY_KEY_TYPE["RSA_2048"] + 1,
            "key_type": "RSA_2048",
        },
    )
    assert response.status_code == 400
    assert response.body["Message"].startswith("count:")
    assert snapshot_certstore(certstore) == before


def test_repeated_ip_sans_appear_once(api: ApiClient) -> None:
    create_hierarchy(api)
    issued = api.create(
        "server", fqdn="mqtt.servers.example.com", sans=["127.0.0.1", "127.0.0.1", "localhost"]
    )
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["mqtt.servers.example.com", "localhost"]


def test_a_ca_revoked_here_is_refused_even_after_a_recent_unrevoked_check(api: ApiClient) -> None:
    create_hierarchy(api)
    api.create("device", parent_fqdn="cell1.devices.example.com")  # records a recent check
    assert api.post("/certificates/cell1.devices.example.com/revoke", {}).status_code == 200
    for _ in range(2):
        response = api.post("/certificates/device", {"parent_fqdn": "cell1.devices.example.com"})
        assert response.status_code == 409

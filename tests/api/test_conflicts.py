"""A taken FQDN is a 409 and the first certificate stays exactly as it was, even under a race.

The 409 tests run on both backends; on AWS they also prove that S3 holds one version of the
object and that no second ACM import happened. The races, against a real local server, are in
tests/e2e/test_concurrency.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.documents import object_key
from tests.backends import Backend, MotoBackend
from tests.helpers import CELL1, ROOT, SERVER_CA, ApiClient, create_hierarchy

SERVER_LEAF = f"mqtt.{SERVER_CA}"
CONCURRENT_CREATES = 8
REQUEST_TIMEOUT_SECONDS = 60


def stored_document(backend: Backend, fqdn: str) -> tuple[bytes, dict[str, Any]]:
    raw = backend.object_bytes(fqdn)
    return raw, json.loads(raw)


def object_versions(snapshot: dict[str, Any], fqdn: str) -> list[str]:
    """The S3 version ids of the certificate's object in an AWS snapshot."""
    return [version for key, version in snapshot["objects"] if key == object_key(fqdn)]


@pytest.mark.parametrize(
    ("kind", "fqdn", "body"),
    [
        ("root", ROOT, {"fqdn": ROOT}),
        ("root", ROOT, {"fqdn": ROOT, "key_type": "RSA_2048", "validity_days": 10}),
        ("root", ROOT, {"fqdn": "Example.COM"}),
        ("intermediate", CELL1, {"fqdn": CELL1}),
        ("intermediate", SERVER_CA, {"fqdn": SERVER_CA, "parent_fqdn": ROOT, "path_length": 0}),
        ("server", SERVER_LEAF, {"fqdn": SERVER_LEAF}),
        (
            "server",
            SERVER_LEAF,
            {"fqdn": SERVER_LEAF, "parent_fqdn": SERVER_CA, "sans": ["10.0.0.1"]},
        ),
    ],
    ids=[
        "root-same",
        "root-other-key-and-validity",
        "root-uppercase",
        "intermediate-default-parent",
        "intermediate-explicit-parent",
        "server-same",
        "server-other-sans",
    ],
)
def test_existing_fqdn_is_a_conflict_and_is_not_replaced(
    backend_api: ApiClient,
    backend: Backend,
    kind: str,
    fqdn: str,
    body: dict[str, Any],
) -> None:
    create_hierarchy(backend_api)
    server = backend_api.create("server", fqdn=SERVER_LEAF)
    original = backend_api.get(f"/certificates/{fqdn}").body
    original_bytes, original_document = stored_document(backend, fqdn)
    before = backend.snapshot()

    response = backend_api.post(f"/certificates/{kind}", body)

    assert response.status_code == 409, response.body
    assert response.body["Code"] == "ConflictError"
    assert fqdn in response.body["Message"]
    assert "private_key" not in response.body
    after_bytes, after_document = stored_document(backend, fqdn)
    assert after_bytes == original_bytes
    assert after_document["private_key"] == original_document["private_key"]
    after = backend.snapshot()
    assert after == before
    fetched = backend_api.get(f"/certificates/{fqdn}")
    assert fetched.status_code == 200, fetched.body
    assert fetched.body == original
    if fqdn == SERVER_LEAF:
        assert after_document["private_key"] == server["private_key"]
    if isinstance(backend, MotoBackend):
        assert len(object_versions(after, fqdn)) == 1
        # Only the one server certificate was ever imported: the 409 made no second import.
        assert after["acm"] == before["acm"]
        assert len(after["acm"]) == 1
        if fqdn == SERVER_LEAF:
            assert fetched.body["acm_certificate_arn"] == after["acm"][0]

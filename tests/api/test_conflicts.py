"""A taken FQDN is a 409 and the first certificate stays exactly as it was, even under a race.

The 409 tests run on both backends; on AWS they also prove that S3 holds one version of the
object and that no second ACM import happened. The races run against a real `chalice local`
server, so they are local only.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from chalicelib.adapters.documents import object_key
from tests.backends import Backend, MotoBackend
from tests.conftest import LocalServer
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


def _create_concurrently(
    url: str, body: dict[str, Any], count: int = CONCURRENT_CREATES
) -> list[requests.Response]:
    """`count` POSTs released together by a barrier, so that they race inside the server."""
    barrier = threading.Barrier(count)

    def create() -> requests.Response:
        barrier.wait(timeout=REQUEST_TIMEOUT_SECONDS)
        return requests.post(url, json=body, timeout=REQUEST_TIMEOUT_SECONDS)

    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(create) for _ in range(count)]
        return [future.result() for future in futures]


def _post(server: LocalServer, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    response = requests.post(
        f"{server.url}/certificates/{kind}", json=body, timeout=REQUEST_TIMEOUT_SECONDS
    )
    assert response.status_code == 201, response.text
    return response.json()


def _assert_one_winner(
    server: LocalServer, responses: list[requests.Response], fqdn: str, parent: str | None
) -> None:
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * (CONCURRENT_CREATES - 1), [r.text for r in responses]
    winner = next(response.json() for response in responses if response.status_code == 201)
    for loser in (response for response in responses if response.status_code == 409):
        assert loser.json()["Code"] == "ConflictError"
        assert fqdn in loser.json()["Message"]
        assert "private_key" not in loser.json()

    fetched = requests.get(f"{server.url}/certificates/{fqdn}", timeout=REQUEST_TIMEOUT_SECONDS)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["serial"] == winner["serial"]
    assert fetched.json()["fingerprint_sha256"] == winner["fingerprint_sha256"]
    document = json.loads((server.certstore / "certificates" / f"{fqdn}.json").read_bytes())
    assert document["serial"] == winner["serial"]
    if "private_key" in winner:
        assert document["private_key"] == winner["private_key"]
    leftovers = [path.name for path in (server.certstore / "certificates").iterdir()]
    assert not [name for name in leftovers if not name.endswith(".json")], leftovers

    query = f"?parent={parent}" if parent else ""
    listing = requests.get(
        f"{server.url}/certificates{query}", timeout=REQUEST_TIMEOUT_SECONDS
    ).json()
    listed = [item for item in listing["items"] if item["fqdn"] == fqdn]
    assert [item["serial"] for item in listed] == [winner["serial"]]


@pytest.mark.slow
def test_concurrent_root_creates_have_one_winner(local_server: LocalServer) -> None:
    """RSA key generation is slow enough that all eight pass the existence check together, so
    the store's write-once guard, not the service's early check, has to pick the winner."""
    responses = _create_concurrently(
        f"{local_server.url}/certificates/root", {"fqdn": ROOT, "key_type": "RSA_2048"}
    )
    _assert_one_winner(local_server, responses, ROOT, parent=None)


@pytest.mark.slow
def test_concurrent_server_creates_have_one_winner(local_server: LocalServer) -> None:
    _post(local_server, "root", {"fqdn": ROOT})
    _post(local_server, "intermediate", {"fqdn": SERVER_CA})
    responses = _create_concurrently(
        f"{local_server.url}/certificates/server", {"fqdn": SERVER_LEAF}
    )
    _assert_one_winner(local_server, responses, SERVER_LEAF, parent=SERVER_CA)

"""Against the local server (a worker per CPU): four clients issuing 250 device certificates
each, eight renewing one certificate at once, and eight creating one FQDN at once (one 201, seven
409s, and the first certificate stays exactly as it was)."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.helpers import ROOT, SERVER_CA
from tests.servers import LocalServer

CELL = "cell.example.com"
CLIENTS, PER_CLIENT = 4, 250
SERVER_LEAF = f"mqtt.{SERVER_CA}"
CONCURRENT_CREATES = 8
REQUEST_TIMEOUT_SECONDS = 60


def _issue(url: str) -> list[dict[str, Any]]:
    session = requests.Session()
    issued = []
    for _ in range(PER_CLIENT):
        response = session.post(
            f"{url}/certificates/device", json={"parent_fqdn": CELL}, timeout=30
        )
        assert response.status_code == 201, response.text
        issued.append(response.json())
    return issued


@pytest.mark.slow
def test_four_clients_issue_a_thousand_unique_devices_and_lose_no_inventory_row(
    local_server: LocalServer,
) -> None:
    for kind, body in (("root", {"fqdn": "example.com"}), ("intermediate", {"fqdn": CELL})):
        assert requests.post(f"{local_server.url}/certificates/{kind}", json=body, timeout=10).ok
    with ThreadPoolExecutor(CLIENTS) as pool:
        batches = list(pool.map(_issue, [local_server.url] * CLIENTS))
    issued = [certificate for batch in batches for certificate in batch]

    assert len(issued) == CLIENTS * PER_CLIENT
    assert len({c["serial"] for c in issued}) == len(issued)
    assert len({c["fqdn"] for c in issued}) == len(issued)
    assert len({c["private_key"] for c in issued}) == len(issued)
    page = requests.get(
        f"{local_server.url}/certificates?parent={CELL}&limit=1000", timeout=30
    ).json()
    assert page["next_token"] is None
    assert {item["fqdn"] for item in page["items"]} == {c["fqdn"] for c in issued}
    files = list((local_server.certstore / "certificates").glob("*.json"))
    assert len(files) == len(issued) + 2


def test_eight_concurrent_renewals_of_one_generation_store_exactly_one(
    local_server: LocalServer,
) -> None:
    url = local_server.url
    for kind, body in (("root", {"fqdn": "example.com"}), ("intermediate", {"fqdn": CELL})):
        assert requests.post(f"{url}/certificates/{kind}", json=body, timeout=10).ok
    device = requests.post(f"{url}/certificates/device", json={"parent_fqdn": CELL}, timeout=10)
    first = device.json()
    first_file = local_server.certstore / "certificates" / f"{first['fqdn']}.json"
    first_bytes = first_file.read_bytes()
    start = threading.Barrier(8)

    def renew(_: int) -> requests.Response:
        session = requests.Session()
        session.get(f"{url}/openapi.json", timeout=10)  # connected before the barrier
        start.wait(timeout=30)
        return session.post(
            f"{url}/certificates/{first['fqdn']}/renew",
            json={"serial": first["serial"]},  # this generation, or a 409
            timeout=30,
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(renew, range(8)))

    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    (winner,) = [r.json() for r in responses if r.status_code == 201]
    assert winner["generation"] == 2 and winner["previous_serial"] == first["serial"]
    for response in responses:
        if response.status_code == 409:
            assert f"(serial {winner['serial']})" in response.json()["Message"], response.text
    history = requests.get(f"{url}/certificates/{first['fqdn']}/history", timeout=10).json()
    assert [item["serial"] for item in history["items"]] == [first["serial"], winner["serial"]]
    assert first_file.read_bytes() == first_bytes
    renewals = local_server.certstore / "certificates" / first["fqdn"]
    assert [path.name for path in renewals.iterdir()] == ["000002.json"]


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
    assert statuses == [201] + [409] * (CONCURRENT_CREATES - 1), (
        [r.text for r in responses],
        server.log()[-4000:],
    )
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

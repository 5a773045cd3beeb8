"""Against the local server (a worker per CPU): four clients issuing 250 device certificates
each, and eight renewing one certificate at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.conftest import LocalServer

CELL = "cell.example.com"
CLIENTS, PER_CLIENT = 4, 250


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

"""Four clients issuing 250 device certificates each against the local server."""

from __future__ import annotations

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

"""The fleet-wide expiry listing, `GET /certificates/expiring`, on both backends: 1,000 devices
over 10 cells with lifetimes of 10 to 100 days; the listing returns exactly those expiring within
the window, across pages, and what it reads does not grow with what lies outside the window."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import wiring
from tests.backends import Backend
from tests.helpers import ApiClient, assert_error

pytestmark = pytest.mark.slow
ROOT = "fleet.example.com"
CELLS = [f"cell{index}.{ROOT}" for index in range(10)]
PER_CELL = 100
WITHIN_DAYS = 45  # cells 0-3 (10, 20, 30 and 40 days)


def lifetime(index: int) -> int:
    return 10 * (index + 1)


def all_pages(api: ApiClient, query: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    token, pages = None, 0
    while True:
        suffix = f"&next_token={token}" if token else ""
        response = api.get(f"/certificates/expiring?{query}{suffix}")
        assert response.status_code == 200, response.body
        assert set(response.body) == {"items", "next_token"}
        items += response.body["items"]
        pages += 1
        token = response.body["next_token"]
        if token is None:
            return items, pages


def reads(within_days: int) -> int:
    """What the inventory read to list the whole window, a page of 100 at a time."""
    service = wiring.certificate_service()
    total, after = 0, None
    while True:
        page = service.list_expiring(within_days, 100, after)
        total += page.read
        if page.last is None:
            return total
        after = page.last


def test_the_fleet_wide_expiry_listing(backend: Backend, backend_api: ApiClient) -> None:
    backend_api.create("root", fqdn=ROOT, key_store="file")  # (KMS signing is not the point)
    devices: dict[str, list[str]] = {}
    for index, cell in enumerate(CELLS):
        backend_api.create("intermediate", fqdn=cell, key_store="file")
        bulk = backend_api.post(
            "/certificates/device",
            {"parent_fqdn": cell, "count": PER_CELL, "validity_days": lifetime(index)},
        )
        assert bulk.status_code == 201, bulk.body
        devices[cell] = [item["fqdn"] for item in bulk.body["items"]]
    revoked = devices[CELLS[0]][:5]
    for fqdn in revoked:
        assert backend_api.post(f"/certificates/{fqdn}/revoke", {}).status_code == 200
    renewed_in = devices[CELLS[5]][:3]  # 60 days, renewed for 15: now in the window
    for fqdn in renewed_in:
        renewal = backend_api.post(f"/certificates/{fqdn}/renew", {"validity_days": 15})
        assert renewal.status_code == 201, renewal.body
    renewed_out = devices[CELLS[1]][:2]  # 20 days, renewed for 300: out of it
    for fqdn in renewed_out:
        renewal = backend_api.post(f"/certificates/{fqdn}/renew", {"validity_days": 300})
        assert renewal.status_code == 201, renewal.body

    expected = {fqdn for cell in CELLS[:4] for fqdn in devices[cell]}
    expected = (expected - set(revoked) - set(renewed_out)) | set(renewed_in)
    listed, pages = all_pages(backend_api, f"within_days={WITHIN_DAYS}&limit=37")
    fqdns = [item["fqdn"] for item in listed]
    assert len(fqdns) == len(set(fqdns)) == len(expected) == 400 - 5 - 2 + 3
    assert set(fqdns) == expected
    assert pages == -(-len(expected) // 37)
    assert [item["not_after"] for item in listed] == sorted(item["not_after"] for item in listed)
    assert {item["days_left"] for item in listed} <= {9, 10, 14, 15, 19, 20, 29, 30, 39, 40}
    assert all(item["status"] == "active" for item in listed)
    assert all(0 <= item["days_left"] <= WITHIN_DAYS for item in listed)
    assert {item["parent_fqdn"] for item in listed} == {*CELLS[:4], CELLS[5]}
    cas_within = all_pages(backend_api, "within_days=4000")[0]
    assert {ROOT, *CELLS} <= {item["fqdn"] for item in cas_within}  # CAs are certificates too

    read_before = reads(WITHIN_DAYS)
    assert read_before <= len(expected) + 5  # the window's items, and one more a page
    outside = backend_api.post(  # 100 more, all outside the window
        "/certificates/device",
        {"parent_fqdn": CELLS[9], "count": 100, "validity_days": 300},
    )
    assert outside.status_code == 201, outside.body
    assert reads(WITHIN_DAYS) == read_before
    assert len(all_pages(backend_api, f"within_days={WITHIN_DAYS}&limit=1000")[0]) == len(expected)


def test_bad_expiry_queries_are_refused(backend_api: ApiClient) -> None:
    for query, field, rule in (
        ("within_days=-1", "within_days", "must be a whole number from 0 to 36500"),
        ("within_days=36501", "within_days", "must be a whole number from 0 to 36500"),
        ("limit=0", "limit", "must be a whole number from 1 to 1000"),
        ("next_token=abc", "next_token", "is not a token returned by this API"),
        ("parent=example.com", "parent", "unknown parameter"),
    ):
        assert_error(backend_api.get(f"/certificates/expiring?{query}"), 400, field, rule)
    empty = backend_api.get("/certificates/expiring")
    assert empty.status_code == 200 and empty.body == {"items": [], "next_token": None}

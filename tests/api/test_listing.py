"""Listing and lookup: paging by parent, the shape of list items, and the inventory handler.

Also the parent rules that decide where a certificate is listed: the default parent of an
intermediate is the closest existing CA above it, and path_length limits how deep CAs nest.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cryptography import x509

from chalicelib.names import encode_fqdn
from tests.backends import Backend, MotoBackend
from tests.helpers import (
    CELL1,
    CELL2,
    DEVICE_CA_PARENT,
    ROOT,
    SERVER_CA,
    ApiClient,
    create_hierarchy,
    list_all,
    list_page,
    load_pem_chain,
    verify_server,
)

LIST_ITEM_FIELDS = {
    "fqdn",
    "type",
    "parent_fqdn",
    "serial",
    "valid_until",
    "not_after",
    "key_type",
    "status",
}
DEFAULT_LIMIT = 100


SLOW_ON_AWS = pytest.mark.parametrize(
    "backend", ["local", pytest.param("aws", marks=pytest.mark.slow)], indirect=True
)
"""Both backends; the AWS one `slow` (hundreds of devices through moto take seconds)."""


def issue_devices(api: ApiClient, parent: str, count: int) -> list[dict[str, Any]]:
    """`count` devices under `parent`, in one bulk (what is listed is the point, not how)."""
    if count == 1:
        return [api.create("device", parent_fqdn=parent)]
    issued = api.post("/certificates/device", {"parent_fqdn": parent, "count": count})
    assert issued.status_code == 201, issued.body
    items: list[dict[str, Any]] = issued.body["items"]
    return items


@SLOW_ON_AWS
def test_paging_returns_every_device_exactly_once(backend_api: ApiClient) -> None:
    create_hierarchy(backend_api)
    devices = issue_devices(backend_api, CELL1, 250)
    neighbours = issue_devices(backend_api, CELL2, 3)
    expected = sorted(device["fqdn"] for device in devices)
    assert len(set(expected)) == 250

    items, pages = list_all(backend_api, f"parent={CELL1}", limit=7)

    fqdns = [item["fqdn"] for item in items]
    assert fqdns == expected
    assert pages >= -(-250 // 7)
    assert {item["parent_fqdn"] for item in items} == {CELL1}
    assert {item["type"] for item in items} == {"Client"}
    serials = {device["fqdn"]: device["serial"] for device in devices}
    assert all(item["serial"] == serials[item["fqdn"]] for item in items)
    assert not {device["fqdn"] for device in neighbours} & set(fqdns)


@SLOW_ON_AWS
def test_default_limit_is_100(backend_api: ApiClient) -> None:
    create_hierarchy(backend_api)
    devices = issue_devices(backend_api, CELL1, DEFAULT_LIMIT + 1)
    expected = sorted(device["fqdn"] for device in devices)

    first = list_page(backend_api, f"parent={CELL1}")
    assert [item["fqdn"] for item in first["items"]] == expected[:DEFAULT_LIMIT]
    assert first["next_token"] is not None

    rest = list_page(backend_api, f"parent={CELL1}&next_token={first['next_token']}")
    assert [item["fqdn"] for item in rest["items"]] == expected[DEFAULT_LIMIT:]
    assert rest["next_token"] is None

    everything = list_page(backend_api, f"parent={CELL1}&limit=1000")
    assert len(everything["items"]) == DEFAULT_LIMIT + 1
    assert everything["next_token"] is None


def test_a_page_that_ends_exactly_at_the_last_item(backend_api: ApiClient) -> None:
    create_hierarchy(backend_api)
    issue_devices(backend_api, CELL1, 14)

    items, pages = list_all(backend_api, f"parent={CELL1}", limit=7)

    assert len(items) == 14
    assert pages == 2  # the second page holds the last item, so its next_token is null
    assert list_page(backend_api, f"parent={CELL1}&limit=14")["next_token"] is None


def test_roots_are_listed_without_parent(backend_api: ApiClient) -> None:
    create_hierarchy(backend_api)
    other = backend_api.create("root", fqdn="other.org")
    backend_api.create("intermediate", fqdn="ca.other.org")

    page = list_page(backend_api, "")

    assert [item["fqdn"] for item in page["items"]] == [ROOT, "other.org"]
    assert {item["type"] for item in page["items"]} == {"Root"}
    assert {item["parent_fqdn"] for item in page["items"]} == {None}
    assert page["items"][1]["serial"] == other["serial"]
    assert page["next_token"] is None

    first = list_page(backend_api, "limit=1")
    assert [item["fqdn"] for item in first["items"]] == [ROOT]
    second = list_page(backend_api, f"limit=1&next_token={first['next_token']}")
    assert [item["fqdn"] for item in second["items"]] == ["other.org"]
    assert second["next_token"] is None


def test_parent_plain_and_base64_give_the_same_listing(backend_api: ApiClient) -> None:
    create_hierarchy(backend_api)
    issue_devices(backend_api, CELL1, 5)
    encoded = encode_fqdn(DEVICE_CA_PARENT)
    assert "." not in encoded

    plain = list_page(backend_api, f"parent={DEVICE_CA_PARENT}")
    base64 = list_page(backend_api, f"parent={encoded}")

    assert plain == base64
    assert [item["fqdn"] for item in plain["items"]] == [CELL1, CELL2]

    first = list_page(backend_api, f"parent={CELL1}&limit=2")
    resumed = list_page(
        backend_api, f"parent={encode_fqdn(CELL1)}&limit=10&next_token={first['next_token']}"
    )
    whole = list_page(backend_api, f"parent={encode_fqdn(CELL1)}&limit=10")
    assert len(whole["items"]) == 5
    assert first["items"] + resumed["items"] == whole["items"]


@pytest.mark.parametrize("kind", ["intermediate", "server", "device"])
def test_get_by_plain_and_base64_fqdn(backend_api: ApiClient, backend: Backend, kind: str) -> None:
    create_hierarchy(backend_api)
    issued = {
        "intermediate": lambda: backend_api.create(
            "intermediate", fqdn=f"cell3.{DEVICE_CA_PARENT}"
        ),
        "server": lambda: backend_api.create("server", fqdn=f"mqtt.{SERVER_CA}"),
        "device": lambda: backend_api.create("device", parent_fqdn=CELL2),
    }[kind]()

    plain = backend_api.get(f"/certificates/{issued['fqdn']}")
    base64 = backend_api.get(f"/certificates/{encode_fqdn(issued['fqdn'])}")

    assert plain.status_code == base64.status_code == 200, (plain.body, base64.body)
    assert plain.body == base64.body
    assert plain.body["fqdn"] == issued["fqdn"]
    assert plain.body["serial"] == issued["serial"]
    assert plain.body["status"] == "active"
    assert "private_key" not in plain.body
    # On AWS a server certificate is imported to ACM; GET finds the ARN in the inventory item.
    imported = kind == "server" and backend.name == "aws"
    assert (plain.body["acm_certificate_arn"] is not None) == imported, plain.body
    if imported:
        assert plain.body["acm_certificate_arn"] == issued["acm_certificate_arn"]


def test_list_items_have_exactly_the_documented_fields(backend_api: ApiClient) -> None:
    issued = create_hierarchy(backend_api, key_type="EC_P384")
    issued["server"] = backend_api.create("server", fqdn=f"mqtt.{SERVER_CA}", key_type="RSA_2048")
    issued["device"] = backend_api.create("device", parent_fqdn=CELL1)
    expected_types = {"server": "Server", "device": "Client", ROOT: "Root"}

    listed = [
        *list_page(backend_api, "")["items"],
        *list_page(backend_api, f"parent={ROOT}")["items"],
        *list_page(backend_api, f"parent={DEVICE_CA_PARENT}")["items"],
        *list_page(backend_api, f"parent={SERVER_CA}")["items"],
        *list_page(backend_api, f"parent={CELL1}")["items"],
    ]

    by_fqdn = {item["fqdn"]: item for item in listed}
    assert set(by_fqdn) == {created["fqdn"] for created in issued.values()}
    for name, created in issued.items():
        item = by_fqdn[created["fqdn"]]
        assert set(item) == LIST_ITEM_FIELDS
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", item["valid_until"])
        assert item["valid_until"] == created["not_after"][:10]
        assert item["not_after"] == created["not_after"]
        assert item["serial"] == created["serial"]
        assert item["key_type"] == created["key_type"]
        assert item["parent_fqdn"] == created["parent_fqdn"]
        assert item["type"] == expected_types.get(name, "Intermediate")
        assert item["status"] == "active"


def created_detail(issued: dict[str, Any]) -> dict[str, str]:
    """The `created` event detail (docs/design.md, "Events and the inventory"), from a 201."""
    return {
        "FQDN": issued["fqdn"],
        "Type": issued["type"],
        "ParentFQDN": issued["parent_fqdn"] or "Root",
        "ValidUntil": issued["not_after"][:10],
        "Serial": issued["serial"],
        "NotAfter": issued["not_after"],
        "KeyType": issued["key_type"],
        "Fingerprint": issued["fingerprint_sha256"],
    }


def deliver_twice(api: ApiClient, detail: dict[str, str]) -> None:
    """Invoke the app's `record_inventory` handler twice with one event, as a retry would."""
    client = api.chalice_client
    event = client.events.generate_cw_event(
        source="certificates", detail_type="created", detail=detail, resources=[]
    )
    for _ in range(2):
        client.lambda_.invoke("record_inventory", event)


def inventory_items(backend: Backend, fqdn: str) -> list[Any]:
    """Every stored inventory item of `fqdn`: SQLite rows locally, DynamoDB items on AWS."""
    stored = backend.snapshot()["inventory"]
    if isinstance(backend, MotoBackend):
        return [item for item in stored if json.loads(item)["FQDN"]["S"] == fqdn]
    return [row for row in stored if row[0] == fqdn]


def test_replayed_created_event_leaves_one_item(backend_api: ApiClient, backend: Backend) -> None:
    create_hierarchy(backend_api)
    device = backend_api.create("device", parent_fqdn=CELL1)
    root = backend_api.get(f"/certificates/{ROOT}").body

    deliver_twice(backend_api, created_detail(device))
    deliver_twice(backend_api, created_detail(root))

    devices = list_page(backend_api, f"parent={CELL1}")["items"]
    assert [item["fqdn"] for item in devices] == [device["fqdn"]]
    assert devices[0]["serial"] == device["serial"]
    roots = list_page(backend_api, "")["items"]
    assert [item["fqdn"] for item in roots] == [ROOT]
    assert len(inventory_items(backend, device["fqdn"])) == 1
    assert len(inventory_items(backend, ROOT)) == 1


def test_new_event_delivered_twice_is_recorded_once(
    backend_api: ApiClient, backend: Backend
) -> None:
    """An event the normal delivery missed, then delivered twice (an EventBridge retry)."""
    create_hierarchy(backend_api)
    device = backend_api.create("device", parent_fqdn=CELL2)
    replayed_fqdn = f"00000000-0000-4000-8000-000000000000.{CELL2}"
    detail = {**created_detail(device), "FQDN": replayed_fqdn, "Serial": "1234abcd"}

    deliver_twice(backend_api, detail)

    items = list_page(backend_api, f"parent={CELL2}")["items"]
    assert sorted(item["fqdn"] for item in items) == sorted([replayed_fqdn, device["fqdn"]])
    assert [item["serial"] for item in items if item["fqdn"] == replayed_fqdn] == ["1234abcd"]
    assert len(inventory_items(backend, replayed_fqdn)) == 1


def subject_common_name_of(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def path_length_of(issued: dict[str, Any]) -> int | None:
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length


def test_default_parent_is_the_longest_existing_ca_suffix(backend_api: ApiClient) -> None:
    backend_api.create("root", fqdn="example.com")
    middle = backend_api.create("intermediate", fqdn="b.example.com", path_length=1)

    nested = backend_api.create("intermediate", fqdn="a.b.example.com")
    skipping = backend_api.create("intermediate", fqdn="c.d.example.com")

    assert nested["parent_fqdn"] == "b.example.com"
    assert subject_common_name_of(load_pem_chain(nested["chain"])[0]) == "b.example.com"
    assert nested["chain"].startswith(middle["certificate"])
    assert skipping["parent_fqdn"] == "example.com"
    assert [item["fqdn"] for item in list_page(backend_api, "parent=b.example.com")["items"]] == [
        "a.b.example.com"
    ]
    assert [item["fqdn"] for item in list_page(backend_api, "parent=example.com")["items"]] == [
        "b.example.com",
        "c.d.example.com",
    ]


def test_default_parent_skips_certificates_that_are_not_cas(backend_api: ApiClient) -> None:
    backend_api.create("root", fqdn="example.com")
    backend_api.create("server", fqdn="mqtt.example.com")

    created = backend_api.create("intermediate", fqdn="ca.mqtt.example.com")

    assert created["parent_fqdn"] == "example.com"


def test_intermediates_nest_only_as_deep_as_path_length_allows(backend_api: ApiClient) -> None:
    root = backend_api.create("root", fqdn="example.com")
    level1 = backend_api.create("intermediate", fqdn="l1.example.com", path_length=2)
    level2 = backend_api.create("intermediate", fqdn="l2.l1.example.com", path_length=1)
    level3 = backend_api.create("intermediate", fqdn="l3.l2.l1.example.com")
    assert [path_length_of(ca) for ca in (level1, level2, level3)] == [2, 1, 0]
    assert level3["parent_fqdn"] == "l2.l1.example.com"

    too_deep = backend_api.post("/certificates/intermediate", {"fqdn": "l4.l3.l2.l1.example.com"})
    assert too_deep.status_code == 400, too_deep.body
    assert too_deep.body["Message"].startswith("parent_fqdn:")
    assert backend_api.get("/certificates/l4.l3.l2.l1.example.com").status_code == 404
    too_long = backend_api.post(
        "/certificates/intermediate", {"fqdn": "wide.l1.example.com", "path_length": 2}
    )
    assert too_long.status_code == 400, too_long.body
    assert too_long.body["Message"].startswith("path_length: must be at most 1")

    leaf_fqdn = "mqtt.l3.l2.l1.example.com"
    server = backend_api.create("server", fqdn=leaf_fqdn)
    chain = verify_server(server, root["certificate"], leaf_fqdn)
    assert [subject_common_name_of(certificate) for certificate in chain] == [
        leaf_fqdn,
        "l3.l2.l1.example.com",
        "l2.l1.example.com",
        "l1.example.com",
        "example.com",
    ]

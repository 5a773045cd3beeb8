"""Revocation: the certificate's status everywhere it shows, the issuing CA's CRL, and the end of
issuance under a revoked CA.

Every test runs on both backends. On AWS the `revoked` event travels through the bus rule and SQS
to the inventory handler (ApiClient.post delivers it), so the list filters see it as in
production. CRLs are checked with cryptography and, when it is installed, with `openssl crl`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.backends import Backend
from tests.helpers import (
    CELL1,
    CELL2,
    DEVICE_CA_PARENT,
    ROOT,
    SERVER_CA,
    ApiClient,
    ApiResponse,
    binary_accepts,
    create_hierarchy,
)

INVENTORY_HANDLER = "record_inventory"


def revoke(api: ApiClient, fqdn: str, body: Any = None) -> ApiResponse:
    return api.post(f"/certificates/{fqdn}/revoke", {} if body is None else body)


def list_items(api: ApiClient, query: str) -> list[dict[str, Any]]:
    response = api.get(f"/certificates?{query}")
    assert response.status_code == 200, response.body
    return response.body["items"]


def fetch_crl(api: ApiClient, ca_fqdn: str, crl_format: str | None = None) -> Any:
    """GET the CRL as API Gateway serves a binary body: only to a client that accepts it."""
    query = f"?format={crl_format}" if crl_format else ""
    response = api.chalice_client.http.get(
        f"/certificates/{ca_fqdn}/crl{query}", headers={"Accept": "*/*"}
    )
    assert response.status_code == 200, response.body
    return response


def load_crl(api: ApiClient, ca_fqdn: str) -> x509.CertificateRevocationList:
    response = fetch_crl(api, ca_fqdn)
    assert response.headers["Content-Type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(response.body)


def load_certificate(issued: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued["certificate"].encode())


def parse_utc(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text), text
    return datetime.fromisoformat(text)


def assert_error(response: ApiResponse, status: int, contains: str) -> None:
    assert response.status_code == status, response.body
    assert set(response.body) == {"Code", "Message"}
    assert contains in response.body["Message"], response.body["Message"]


# Revoking a device ---------------------------------------------------------------------------


def test_revoked_device_shows_as_revoked_in_get_and_list(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    sibling = backend_api.create("device", parent_fqdn=CELL1)

    response = revoke(backend_api, device["fqdn"], {"reason": "keyCompromise"})

    assert response.status_code == 200, response.body
    body = response.body
    assert body["fqdn"] == device["fqdn"]
    assert body["serial"] == device["serial"]
    assert body["status"] == "revoked"
    assert body["revocation_reason"] == "keyCompromise"
    revoked_at = parse_utc(body["revoked_at"])
    assert parse_utc(device["not_before"]) < revoked_at
    assert "private_key" not in body
    assert "issued_certificates" not in body  # only a CA reports what it issued

    fetched = backend_api.get(f"/certificates/{device['fqdn']}").body
    assert fetched["status"] == "revoked"
    assert fetched["revoked_at"] == body["revoked_at"]
    assert fetched["revocation_reason"] == "keyCompromise"
    untouched = backend_api.get(f"/certificates/{sibling['fqdn']}").body
    assert untouched["status"] == "active"
    assert "revoked_at" not in untouched and "revocation_reason" not in untouched

    revoked = list_items(backend_api, f"parent={CELL1}&status=revoked")
    assert [(item["fqdn"], item["status"]) for item in revoked] == [(device["fqdn"], "revoked")]
    active = list_items(backend_api, f"parent={CELL1}&status=active")
    assert [(item["fqdn"], item["status"]) for item in active] == [(sibling["fqdn"], "active")]
    everything = list_items(backend_api, f"parent={CELL1}")
    assert {item["fqdn"]: item["status"] for item in everything} == {
        device["fqdn"]: "revoked",
        sibling["fqdn"]: "active",
    }


def test_crl_lists_exactly_the_revoked_device_and_is_signed_by_its_ca(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    sibling = backend_api.create("device", parent_fqdn=CELL1)
    revoked_at = parse_utc(
        revoke(backend_api, device["fqdn"], {"reason": "keyCompromise"}).body["revoked_at"]
    )
    ca = load_certificate(hierarchy[CELL1])

    crl = load_crl(backend_api, CELL1)

    assert crl.is_signature_valid(ca.public_key())
    assert not crl.is_signature_valid(load_certificate(hierarchy[CELL2]).public_key())
    assert crl.issuer == ca.subject
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > crl.last_update_utc
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    entries = list(crl)
    assert [entry.serial_number for entry in entries] == [int(device["serial"], 16)]
    assert int(sibling["serial"], 16) not in {entry.serial_number for entry in entries}
    assert crl.get_revoked_certificate_by_serial_number(int(sibling["serial"], 16)) is None
    assert entries[0].revocation_date_utc == revoked_at
    assert crl.last_update_utc >= revoked_at  # never dated before what it lists
    reason = entries[0].extensions.get_extension_for_class(x509.CRLReason).value
    assert reason.reason is x509.ReasonFlags.key_compromise

    pem_response = fetch_crl(backend_api, CELL1, "pem")
    pem_body = pem_response.body
    pem_text = pem_body.decode() if isinstance(pem_body, bytes) else pem_body
    assert pem_text.startswith("-----BEGIN X509 CRL-----")
    pem_crl = x509.load_pem_x509_crl(pem_text.encode())
    assert pem_crl.is_signature_valid(ca.public_key())
    assert [entry.serial_number for entry in pem_crl] == [int(device["serial"], 16)]

    other_crl = load_crl(backend_api, CELL2)  # the sibling CA's CRL is empty and its own
    assert other_crl.is_signature_valid(load_certificate(hierarchy[CELL2]).public_key())
    assert list(other_crl) == []


ACCEPT_CASES = binary_accepts("application/pkix-crl")


@pytest.mark.parametrize("accept", ACCEPT_CASES.values(), ids=ACCEPT_CASES.keys())
def test_the_der_crl_arrives_as_bytes_for_curl_requests_and_its_own_type(
    api: ApiClient, accept: str
) -> None:
    """Chalice admits each of these Accept headers and base64-encodes the body for API Gateway,
    which decodes it for them (its side: tests/unit/test_chalice_tf.py)."""
    hierarchy = create_hierarchy(api)
    device = api.create("device", parent_fqdn=CELL1)
    assert revoke(api, device["fqdn"], {"reason": "keyCompromise"}).status_code == 200
    response = api.chalice_client.http.get(f"/certificates/{CELL1}/crl", headers={"Accept": accept})
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "application/pkix-crl"
    assert isinstance(response.body, bytes)
    crl = x509.load_der_x509_crl(response.body)
    assert crl.public_bytes(Encoding.DER) == response.body
    assert crl.is_signature_valid(load_certificate(hierarchy[CELL1]).public_key())
    assert [entry.serial_number for entry in crl] == [int(device["serial"], 16)]


@pytest.mark.parametrize("accept", [None, "application/*", "application/json", "text/html"])
def test_the_der_crl_answers_any_accept_header(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]], accept: str | None
) -> None:
    """A relying party following a CRL Distribution Point cannot choose its headers: openssl
    sends no Accept. The CRL is the one representation there is, so every client gets it, as
    bytes from the local server and base64 for API Gateway to decode (binary media types */*:
    tests/unit/test_chalice_tf.py)."""
    headers = {} if accept is None else {"Accept": accept}
    response = backend_api.chalice_client.http.get(f"/certificates/{CELL1}/crl", headers=headers)
    assert response.status_code == 200, response.body
    assert response.headers["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.body)
    assert crl.is_signature_valid(load_certificate(hierarchy[CELL1]).public_key())


def test_unspecified_revocation_has_no_reason_extension(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    """An empty body is allowed and means `unspecified`, which RFC 5280 says to leave out."""
    device = backend_api.create("device", parent_fqdn=CELL1)
    superseded = backend_api.create("device", parent_fqdn=CELL1)

    response = backend_api.post(f"/certificates/{device['fqdn']}/revoke", "")
    assert response.status_code == 200, response.body
    assert response.body["revocation_reason"] == "unspecified"
    assert revoke(backend_api, superseded["fqdn"], {"reason": "superseded"}).status_code == 200

    entries = {entry.serial_number: entry for entry in load_crl(backend_api, CELL1)}
    assert set(entries) == {int(device["serial"], 16), int(superseded["serial"], 16)}
    unspecified = entries[int(device["serial"], 16)]
    with pytest.raises(x509.ExtensionNotFound):
        unspecified.extensions.get_extension_for_class(x509.CRLReason)
    assert len(unspecified.extensions) == 0
    reason = entries[int(superseded["serial"], 16)].extensions.get_extension_for_class(
        x509.CRLReason
    )
    assert reason.value.reason is x509.ReasonFlags.superseded


def run_openssl_crl(crl_path: Path, ca_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "crl",
            "-in",
            str(crl_path),
            "-CAfile",
            str(ca_file),
            "-noout",
            "-verify",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not on PATH")
def test_openssl_verifies_the_crl(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    assert (
        revoke(backend_api, device["fqdn"], {"reason": "cessationOfOperation"}).status_code == 200
    )
    crl_path = tmp_path / "cell1.crl.pem"
    pem_body = fetch_crl(backend_api, CELL1, "pem").body
    crl_path.write_bytes(pem_body if isinstance(pem_body, bytes) else pem_body.encode())
    ca_file = tmp_path / "cell1-chain.pem"
    ca_file.write_text(hierarchy[CELL1]["certificate"] + hierarchy[CELL1]["chain"])

    verified = run_openssl_crl(crl_path, ca_file)
    assert verified.returncode == 0, verified.stderr
    assert "verify OK" in verified.stdout + verified.stderr

    # Negative controls: the same CRL with its signature's last byte flipped, and another CA.
    der = bytearray(x509.load_pem_x509_crl(crl_path.read_bytes()).public_bytes(Encoding.DER))
    der[-1] ^= 0x01
    corrupted_path = tmp_path / "corrupted.crl.pem"
    corrupted_path.write_bytes(x509.load_der_x509_crl(bytes(der)).public_bytes(Encoding.PEM))
    corrupted = run_openssl_crl(corrupted_path, ca_file)
    # openssl 3.0 `crl` exits 0 after a failed check: its message is what tells.
    assert "verify failure" in corrupted.stdout + corrupted.stderr
    assert "verify OK" not in corrupted.stdout + corrupted.stderr
    other_ca_file = tmp_path / "cell2-chain.pem"
    other_ca_file.write_text(hierarchy[CELL2]["certificate"] + hierarchy[CELL2]["chain"])
    wrong_issuer = run_openssl_crl(crl_path, other_ca_file)
    assert "verify OK" not in wrong_issuer.stdout + wrong_issuer.stderr


# Conflicts and bad requests ------------------------------------------------------------------


def test_revoking_twice_is_a_409_and_changes_nothing(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    first = revoke(backend_api, device["fqdn"], {"reason": "keyCompromise"})
    assert first.status_code == 200
    before = backend.snapshot()
    crl_before = [
        (entry.serial_number, entry.revocation_date_utc) for entry in load_crl(backend_api, CELL1)
    ]

    second = revoke(backend_api, device["fqdn"], {"reason": "superseded"})

    assert_error(second, 409, device["fqdn"])
    assert backend.snapshot() == before
    fetched = backend_api.get(f"/certificates/{device['fqdn']}").body
    assert fetched["revocation_reason"] == "keyCompromise"
    assert fetched["revoked_at"] == first.body["revoked_at"]
    crl_after = [
        (entry.serial_number, entry.revocation_date_utc) for entry in load_crl(backend_api, CELL1)
    ]
    assert crl_after == crl_before


def test_revoking_a_ca_reports_what_it_issued_and_stops_issuance_under_it(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    devices = [backend_api.create("device", parent_fqdn=CELL1) for _ in range(3)]

    response = revoke(backend_api, CELL1, {"reason": "cACompromise"})

    assert response.status_code == 200, response.body
    assert response.body["status"] == "revoked"
    assert response.body["issued_certificates"] == len(devices)
    parent_crl = load_crl(backend_api, DEVICE_CA_PARENT)
    assert [entry.serial_number for entry in parent_crl] == [int(hierarchy[CELL1]["serial"], 16)]
    assert [
        item["fqdn"]
        for item in list_items(backend_api, f"parent={DEVICE_CA_PARENT}&status=revoked")
    ] == [CELL1]

    before = backend.snapshot()
    refused = backend_api.post("/certificates/device", {"parent_fqdn": CELL1})
    assert_error(refused, 409, CELL1)
    assert "revoked" in refused.body["Message"]
    refused_bulk = backend_api.post("/certificates/device", {"parent_fqdn": CELL1, "count": 3})
    assert_error(refused_bulk, 409, CELL1)
    assert backend.snapshot() == before
    # Its certificates stay listed, revoked with it, and the sibling cell still issues.
    listed = list_items(backend_api, f"parent={CELL1}")
    assert len(listed) == len(devices) and {item["status"] for item in listed} == {"revoked"}
    assert list_items(backend_api, f"parent={CELL1}&status=active") == []
    assert backend_api.post("/certificates/device", {"parent_fqdn": CELL2}).status_code == 201
    # They show as revoked, by the cell, and its own CRL lists them (for those who check only a
    # leaf's CRL, as mosquitto does); no chain through the cell is served any more.
    shown = backend_api.get(f"/certificates/{devices[0]['fqdn']}").body
    assert (shown["status"], shown["revoked_with"], shown["chain"]) == ("revoked", CELL1, "")
    assert shown["revocation_reason"] == "cACompromise"
    cell_crl = load_crl(backend_api, CELL1)
    assert {entry.serial_number for entry in cell_crl} == {int(d["serial"], 16) for d in devices}
    for entry in cell_crl:
        reason = entry.extensions.get_extension_for_class(x509.CRLReason).value
        assert reason.reason is x509.ReasonFlags.ca_compromise
    assert cell_crl.is_signature_valid(load_certificate(hierarchy[CELL1]).public_key())
    for bundle in ("fullchain", "chain"):
        refused_bundle = backend_api.get(
            f"/certificates/{devices[0]['fqdn']}/bundle?format={bundle}"
        )
        assert_error(refused_bundle, 409, f"CA {CELL1} was revoked")
    assert_error(backend_api.get(f"/certificates/{CELL1}/bundle?format=chain"), 409, CELL1)
    assert (
        backend_api.get(f"/certificates/{devices[0]['fqdn']}/bundle?format=pem").status_code == 200
    )


def test_issuance_under_a_child_of_a_revoked_ca_is_a_409(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    response = revoke(backend_api, DEVICE_CA_PARENT, {"reason": "cACompromise"})
    assert response.status_code == 200, response.body
    assert response.body["issued_certificates"] == 2  # cell1 and cell2
    before = backend.snapshot()

    for cell in (CELL1, CELL2):
        refused = backend_api.post("/certificates/device", {"parent_fqdn": cell})
        assert_error(refused, 409, DEVICE_CA_PARENT)
    refused_ca = backend_api.post(
        "/certificates/intermediate", {"fqdn": f"cell3.{DEVICE_CA_PARENT}"}
    )
    assert_error(refused_ca, 409, DEVICE_CA_PARENT)

    assert backend.snapshot() == before
    # Negative control: the server branch of the same root is unaffected.
    server = backend_api.post("/certificates/server", {"fqdn": f"mqtt.{SERVER_CA}"})
    assert server.status_code == 201, server.body


def test_revoking_a_root_reports_its_intermediates(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    response = revoke(backend_api, ROOT, {"reason": "cACompromise"})
    assert response.status_code == 200, response.body
    assert response.body["issued_certificates"] == 2  # servers and devices
    refused = backend_api.post("/certificates/server", {"fqdn": f"mqtt.{SERVER_CA}"})
    assert_error(refused, 409, ROOT)


BAD_REVOCATIONS: dict[str, tuple[str, Any, int, str]] = {
    # name: (certificate, body, status, the field the message starts with)
    "unknown-device": (f"{uuid.UUID(int=0)}.{CELL1}", {}, 404, "certificate"),
    "unknown-fqdn": ("unknown.example.net", {"reason": "keyCompromise"}, 404, "certificate"),
    "bad-reason": (CELL1, {"reason": "compromised"}, 400, "reason"),
    "delta-crl-reason": (CELL1, {"reason": "removeFromCRL"}, 400, "reason"),
    "numeric-reason": (CELL1, {"reason": 1}, 400, "reason"),
    "unknown-field": (CELL1, {"reason": "keyCompromise", "when": "now"}, 400, "when"),
    "list-body": (CELL1, [], 400, "body"),
    "not-json": (CELL1, "not json", 400, "body"),
    "bad-name": ("bad..name", {}, 400, "certificate"),
}


def test_bad_revocations_are_refused_and_write_nothing(
    backend_api: ApiClient,
    backend: Backend,
    hierarchy: dict[str, dict[str, Any]],
    subtests: pytest.Subtests,
) -> None:
    for case, (target, body, status, field) in BAD_REVOCATIONS.items():
        with subtests.test(case=case):
            before = backend.snapshot()

            response = backend_api.post(f"/certificates/{target}/revoke", body)

            assert response.status_code == status, response.body
            assert re.match(rf"{re.escape(field)}(?!\w)", response.body["Message"]), response.body
            assert backend.snapshot() == before
    # Negative control: the same CA revokes once the body is right.
    assert revoke(backend_api, CELL1, {"reason": "superseded"}).status_code == 200


def test_crl_of_an_unknown_ca_or_a_leaf_is_refused(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    headers = {"Accept": "*/*"}
    http = backend_api.chalice_client.http

    assert http.get("/certificates/nowhere.example.net/crl", headers=headers).status_code == 404
    assert http.get(f"/certificates/{device['fqdn']}/crl", headers=headers).status_code == 400
    assert http.get(f"/certificates/{CELL1}/crl?format=txt", headers=headers).status_code == 400


# The inventory handler -----------------------------------------------------------------------


def revoked_envelope(revoked: dict[str, Any], parent_fqdn: str) -> dict[str, Any]:
    """The `revoked` event as EventBridge hands it to the Lambda (shape: docs/design.md)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "revoked",
        "source": "certificates",
        "account": "123456789012",
        "time": revoked["revoked_at"],
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "FQDN": revoked["fqdn"],
            "ParentFQDN": parent_fqdn,
            "Serial": revoked["serial"],
            "Reason": revoked["revocation_reason"],
            "RevokedAt": revoked["revoked_at"],
        },
    }


def test_replayed_revoked_event_leaves_one_revoked_item(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    sibling = backend_api.create("device", parent_fqdn=CELL1)
    revoked = revoke(backend_api, device["fqdn"], {"reason": "keyCompromise"}).body
    before = backend.snapshot()

    for _ in range(2):
        backend_api.chalice_client.lambda_.invoke(
            INVENTORY_HANDLER, revoked_envelope(revoked, CELL1)
        )

    assert backend.snapshot() == before
    items = list_items(backend_api, f"parent={CELL1}")
    assert sorted((item["fqdn"], item["status"]) for item in items) == sorted(
        [(device["fqdn"], "revoked"), (sibling["fqdn"], "active")]
    )


def test_revoked_event_marks_the_item_when_delivered(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    """The handler itself makes the list change: an item still active turns revoked."""
    device = backend_api.create("device", parent_fqdn=CELL1)
    # A revoked event for an active item (as if the API's own delivery had not happened yet).
    envelope = revoked_envelope(
        {
            "fqdn": device["fqdn"],
            "serial": device["serial"],
            "revocation_reason": "superseded",
            "revoked_at": device["not_before"],
        },
        CELL1,
    )
    assert [item["status"] for item in list_items(backend_api, f"parent={CELL1}")] == ["active"]

    backend_api.chalice_client.lambda_.invoke(INVENTORY_HANDLER, envelope)

    assert [item["status"] for item in list_items(backend_api, f"parent={CELL1}")] == ["revoked"]
    assert list_items(backend_api, f"parent={CELL1}&status=active") == []

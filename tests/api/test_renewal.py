"""Renewal: generations of a certificate, each its own write-once document, on both backends.

On AWS the `renewed` event travels through the bus rule and SQS to the inventory handler
(ApiClient.post delivers it), so listings see the current generation as in production.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.backends import Backend
from tests.helpers import (
    CELL1,
    ROOT,
    SERVER_CA,
    ApiClient,
    ApiResponse,
    load_pem_chain,
    verify_client,
    verify_server,
)

SERVER = "mqtt.servers.example.com"


def renew(api: ApiClient, fqdn: str, body: dict[str, Any] | None = None) -> ApiResponse:
    return api.post(f"/certificates/{fqdn}/renew", body or {})


def renewed(api: ApiClient, fqdn: str, **body: Any) -> dict[str, Any]:
    response = renew(api, fqdn, body)
    assert response.status_code == 201, response.body
    return response.body


def certificate_of(issued: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(issued["certificate"].encode())


def public_der(certificate: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def make_csr(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def assert_error(response: ApiResponse, status: int, contains: str) -> None:
    assert response.status_code == status, response.body
    assert set(response.body) == {"Code", "Message"}
    assert contains in response.body["Message"], response.body["Message"]


def test_four_generations_of_a_device_each_retrievable_and_verifying(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    api, root_pem = backend_api, hierarchy[ROOT]["certificate"]
    first = api.create("device", parent_fqdn=CELL1, organization="Acme")
    fqdn = first["fqdn"]
    assert (first["generation"], first["previous_serial"]) == (1, None)

    second = renewed(api, fqdn, key_type="EC_P384")
    third = renewed(api, fqdn, reuse_key=True, validity_days=30)
    csr_key, csr = make_csr("ignored: the certificate keeps its subject")
    fourth = renewed(api, fqdn, csr=csr)
    generations = [first, second, third, fourth]

    assert [g["generation"] for g in generations] == [1, 2, 3, 4]
    assert [g["previous_serial"] for g in generations] == [None] + [
        g["serial"] for g in generations[:-1]
    ]
    assert len({g["serial"] for g in generations}) == 4
    certificates = [certificate_of(g) for g in generations]
    for issued, certificate in zip(generations, certificates, strict=True):
        assert issued["fqdn"] == fqdn and issued["device_id"] == first["device_id"]
        assert issued["parent_fqdn"] == CELL1
        assert certificate.subject == certificates[0].subject  # CN = device id, O = Acme
        assert certificate.issuer == certificates[0].issuer
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.value.get_values_for_type(x509.DNSName) == [fqdn]
        verify_client(issued, root_pem)
    # keys: new (P-384), the same again, then the CSR's; the key is returned unless from a CSR
    assert isinstance(certificates[1].public_key(), ec.EllipticCurvePublicKey)
    assert second["key_type"] == third["key_type"] == "EC_P384"
    assert public_der(certificates[0]) != public_der(certificates[1])
    assert public_der(certificates[1]) == public_der(certificates[2])
    assert third["private_key"] == second["private_key"]
    assert public_der(certificates[3]) == public_der(x509.load_pem_x509_csr(csr.encode()))
    assert "private_key" not in fourth and csr_key is not None

    current = api.get(f"/certificates/{fqdn}")
    assert current.status_code == 200
    assert (current.body["serial"], current.body["generation"]) == (fourth["serial"], 4)
    history = api.get(f"/certificates/{fqdn}/history")
    assert history.status_code == 200, history.body
    assert history.body["count"] == 4
    assert [item["serial"] for item in history.body["items"]] == [g["serial"] for g in generations]
    assert all("private_key" not in item for item in history.body["items"])
    assert {item["status"] for item in history.body["items"]} == {"active"}
    for issued in generations[:3]:
        one = api.get(f"/certificates/{fqdn}?serial={issued['serial'].upper()}")
        assert one.status_code == 200, one.body
        assert one.body["certificate"] == issued["certificate"]
        assert one.body["generation"] == issued["generation"]
        key = api.get(f"/certificates/{fqdn}/private-key?serial={issued['serial']}")
        assert key.body["private_key"] == issued["private_key"]
    # current-generation routes serve the fourth: its key never reached the service
    assert_error(api.get(f"/certificates/{fqdn}/private-key"), 404, "issued from a CSR")
    pem = api.chalice_client.http.get(f"/certificates/{fqdn}/bundle?format=pem").body.decode()
    assert fourth["certificate"] in pem
    old_pem = api.chalice_client.http.get(
        f"/certificates/{fqdn}/bundle?format=pem&serial={first['serial']}"
    ).body.decode()
    assert first["certificate"] in old_pem and fourth["certificate"] not in old_pem

    listed = api.get(f"/certificates?parent={CELL1}").body["items"]
    assert [(item["fqdn"], item["serial"]) for item in listed] == [(fqdn, fourth["serial"])]


def test_a_renewed_device_no_longer_lists_as_expiring(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1, validity_days=5)
    expiring = f"/certificates?parent={CELL1}&expiring_within_days=30"
    assert [i["fqdn"] for i in backend_api.get(expiring).body["items"]] == [device["fqdn"]]

    renewal = renewed(backend_api, device["fqdn"], validity_days=365)

    assert backend_api.get(expiring).body["items"] == []
    (item,) = backend_api.get(f"/certificates?parent={CELL1}").body["items"]
    assert (item["serial"], item["not_after"]) == (renewal["serial"], renewal["not_after"])


def test_server_renewal_keeps_names_and_is_imported_into_the_same_acm_arn(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    first = backend_api.create(
        "server", fqdn=SERVER, sans=["broker.example.com", "10.0.0.7"], country="DE"
    )
    second = renewed(backend_api, SERVER, key_type="RSA_2048")

    assert second["key_type"] == "RSA_2048" and second["generation"] == 2
    for issued in (first, second):
        for name in (SERVER, "broker.example.com"):
            verify_server(issued, hierarchy[ROOT]["certificate"], name)
    old, new = certificate_of(first), certificate_of(second)
    assert new.subject == old.subject
    san_type = x509.SubjectAlternativeName
    assert (
        new.extensions.get_extension_for_class(san_type).value
        == old.extensions.get_extension_for_class(san_type).value
    )
    assert second["chain"] == first["chain"]
    if backend.name == "aws":
        arn = first["acm_certificate_arn"]
        assert arn and second["acm_certificate_arn"] == arn
        assert backend_api.get(f"/certificates/{SERVER}").body["acm_certificate_arn"] == arn
        acm = backend.acm.get_certificate(CertificateArn=arn)  # type: ignore[attr-defined]
        assert acm["Certificate"].strip() == second["certificate"].strip()
        arns = backend.acm.list_certificates()["CertificateSummaryList"]  # type: ignore[attr-defined]
        assert [summary["CertificateArn"] for summary in arns] == [arn]
    else:
        assert second["acm_certificate_arn"] is None


def test_revoke_previous_lists_the_old_serial_as_superseded_on_the_crl(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    renewal = renewed(backend_api, device["fqdn"], revoke_previous=True)

    crl_response = backend_api.chalice_client.http.get(
        f"/certificates/{CELL1}/crl", headers={"Accept": "*/*"}
    )
    crl = x509.load_der_x509_crl(crl_response.body)
    entries = {format(entry.serial_number, "x"): entry for entry in crl}
    assert set(entries) == {device["serial"]}
    reason = entries[device["serial"]].extensions.get_extension_for_class(x509.CRLReason)
    assert reason.value.reason is x509.ReasonFlags.superseded

    history = backend_api.get(f"/certificates/{device['fqdn']}/history").body["items"]
    assert [(i["status"], i.get("revocation_reason")) for i in history] == [
        ("revoked", "superseded"),
        ("active", None),
    ]
    current = backend_api.get(f"/certificates/{device['fqdn']}").body
    assert (current["serial"], current["status"]) == (renewal["serial"], "active")
    (item,) = backend_api.get(f"/certificates?parent={CELL1}").body["items"]
    assert item["status"] == "active"
    # still renewable: only one generation was revoked
    assert renewed(backend_api, device["fqdn"])["generation"] == 3


def test_revoking_a_renewed_certificate_revokes_every_generation_and_ends_renewals(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    second = renewed(backend_api, device["fqdn"], revoke_previous=True)
    third = renewed(backend_api, device["fqdn"])

    revoked = backend_api.post(
        f"/certificates/{device['fqdn']}/revoke", {"reason": "keyCompromise"}
    )
    assert revoked.status_code == 200, revoked.body
    assert revoked.body["serial"] == third["serial"]

    crl_response = backend_api.chalice_client.http.get(
        f"/certificates/{CELL1}/crl", headers={"Accept": "*/*"}
    )
    crl = x509.load_der_x509_crl(crl_response.body)
    reasons = {
        format(entry.serial_number, "x"): entry.extensions.get_extension_for_class(
            x509.CRLReason
        ).value.reason
        for entry in crl
    }
    assert reasons == {
        device["serial"]: x509.ReasonFlags.superseded,
        second["serial"]: x509.ReasonFlags.key_compromise,
        third["serial"]: x509.ReasonFlags.key_compromise,
    }
    before = backend.snapshot()
    assert_error(renew(backend_api, device["fqdn"]), 409, "is revoked")
    assert backend.snapshot() == before


def test_renewing_a_ca_keeps_its_key_and_what_it_issued_verifies_under_both(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    old_cell = hierarchy[CELL1]

    new_cell = renewed(backend_api, CELL1)

    old, new = certificate_of(old_cell), certificate_of(new_cell)
    ski = x509.SubjectKeyIdentifier
    assert new.extensions.get_extension_for_class(ski) == old.extensions.get_extension_for_class(
        ski
    )
    assert new.subject == old.subject and new.serial_number != old.serial_number
    assert new_cell["generation"] == 2 and "private_key" not in new_cell
    constraints = new.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    root_pem = hierarchy[ROOT]["certificate"]
    verify_client(device, root_pem)  # with the old cell certificate in its chain
    verify_client({**device, "chain": new_cell["certificate"] + new_cell["chain"]}, root_pem)
    # issued after the renewal: chained to the new certificate, verifies under the old one too
    later = backend_api.create("device", parent_fqdn=CELL1)
    assert load_pem_chain(later["chain"])[0] == new
    verify_client({**later, "chain": old_cell["certificate"] + old_cell["chain"]}, root_pem)
    # issued before it: served with the new certificate from now on
    served = backend_api.get(f"/certificates/{device['fqdn']}").body
    assert load_pem_chain(served["chain"])[0] == new
    verify_client(served, root_pem)


def test_a_ca_renewal_never_ends_before_the_generation_it_renews(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    """What the cell issued may run until its current certificate ends: a renewal that would
    end earlier is refused, and nothing is written."""
    device = backend_api.create("device", parent_fqdn=CELL1)
    before = backend_api.backend.snapshot()

    response = backend_api.post(f"/certificates/{CELL1}/renew", {"validity_days": 30})

    assert response.status_code == 409, response.body
    assert response.body["Message"].startswith("validity_days: 30 days would end")
    assert hierarchy[CELL1]["not_after"] in response.body["Message"]
    assert backend_api.backend.snapshot() == before
    longer = renewed(backend_api, CELL1)
    assert longer["not_after"] >= hierarchy[CELL1]["not_after"] >= device["not_after"]


def test_renewing_a_root_keeps_its_key(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    new_root = renewed(backend_api, ROOT, validity_days=7300)

    old, new = certificate_of(hierarchy[ROOT]), certificate_of(new_root)
    assert public_der(new) == public_der(old) and new.issuer == new.subject == old.subject
    assert new_root["parent_fqdn"] is None and new_root["chain"] == ""
    new.verify_directly_issued_by(new)
    verify_server(
        backend_api.create("server", fqdn=SERVER), new_root["certificate"], SERVER
    )  # its chain holds an intermediate issued under the old root certificate


def test_renewal_input_is_checked_and_nothing_is_written(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    _, csr = make_csr("device")
    from_csr = backend_api.create("device", parent_fqdn=CELL1, csr=csr)
    fqdn = device["fqdn"]
    before = backend.snapshot()
    cases = [
        (fqdn, {"colour": "red"}, 400, "colour: unknown field"),
        (fqdn, {"reuse_key": "yes"}, 400, "reuse_key: must be true or false"),
        (fqdn, {"revoke_previous": 1}, 400, "revoke_previous: must be true or false"),
        (fqdn, {"reuse_key": True, "key_type": "EC_P384"}, 400, "key_type: cannot be combined"),
        (fqdn, {"csr": csr, "key_type": "EC_P384"}, 400, "csr: cannot be combined"),
        (fqdn, {"key_type": "DSA"}, 400, "key_type: must be one of"),
        (fqdn, {"validity_days": 0}, 400, "validity_days: must be a whole number"),
        (fqdn, {"validity_days": 5000}, 400, "validity_days: must be at most"),
        (fqdn, {"serial": "xyz"}, 400, "serial: must be a certificate serial number"),
        (fqdn, {"serial": "abc"}, 409, f"generation 1 (serial {device['serial']}) is"),
        (from_csr["fqdn"], {"reuse_key": True}, 400, "reuse_key: "),
        (CELL1, {"key_type": "EC_P384"}, 400, "key_type: cell1.devices.example.com is a CA"),
        (CELL1, {"reuse_key": False}, 400, "reuse_key: "),
        (SERVER_CA, {"csr": csr}, 400, "csr: "),
        ("nothing.example.com", {}, 404, "not found"),
    ]
    for name, body, status, message in cases:
        assert_error(renew(backend_api, name, body), status, message)
    assert_error(backend_api.post(f"/certificates/{fqdn}/renew", "[1]"), 400, "JSON object")
    assert_error(backend_api.get(f"/certificates/{fqdn}?serial=abc"), 404, "no generation")
    assert_error(backend_api.get(f"/certificates/{fqdn}?serial=-1"), 400, "serial: ")
    assert_error(backend_api.get(f"/certificates/{fqdn}?colour=red"), 400, "colour: ")
    assert_error(backend_api.get(f"/certificates/{fqdn}/history?serial=abc"), 400, "serial: ")
    assert_error(backend_api.get("/certificates/nothing.example.com/history"), 404, "not found")
    assert backend.snapshot() == before


def test_a_renewal_naming_a_superseded_serial_is_a_409_naming_the_current_one(
    backend_api: ApiClient, backend: Backend, hierarchy: dict[str, dict[str, Any]]
) -> None:
    device = backend_api.create("device", parent_fqdn=CELL1)
    winner = renewed(backend_api, device["fqdn"], serial=device["serial"])
    before = backend.snapshot()

    response = renew(backend_api, device["fqdn"], {"serial": device["serial"]})

    assert_error(response, 409, f"generation 2 (serial {winner['serial']}) is")
    assert response.body["Code"] == "ConflictError"
    assert backend.snapshot() == before


def test_history_is_paged_like_a_listing(
    backend_api: ApiClient, hierarchy: dict[str, dict[str, Any]]
) -> None:
    """Thousands of renewals must not make one answer over Lambda's 6 MB: `limit` and
    `next_token`, as GET /certificates pages."""
    device = backend_api.create("device", parent_fqdn=CELL1)
    serials = [device["serial"]] + [
        renewed(backend_api, device["fqdn"])["serial"] for _ in range(4)
    ]
    path = f"/certificates/{device['fqdn']}/history"

    pages, token = [], None
    while True:
        query = "?limit=2" + (f"&next_token={token}" if token else "")
        page = backend_api.get(path + query).body
        assert page["count"] == 5 and len(page["items"]) <= 2
        pages.append([item["serial"] for item in page["items"]])
        token = page["next_token"]
        if token is None:
            break
    assert pages == [serials[0:2], serials[2:4], serials[4:5]]
    assert backend_api.get(path).body["next_token"] is None  # 100 a page by default
    other = backend_api.create("device", parent_fqdn=CELL1)
    first_token = backend_api.get(path + "?limit=1").body["next_token"]
    other_path = f"/certificates/{other['fqdn']}/history"
    for target, field in (
        (f"{path}?limit=0", "limit: "),
        (f"{path}?limit=1001", "limit: "),
        (f"{path}?next_token=forged", "next_token: "),
        (f"{other_path}?next_token={first_token}", "next_token: "),  # another's history
    ):
        assert_error(backend_api.get(target), 400, field)

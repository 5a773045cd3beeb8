"""Revocation that holds where operations meet, against the `make run` server with two workers,
checked with `openssl verify -crl_check_all`: renewals racing revocations (a device, a cell CA),
issuance across workers right after a CA rollover, and CRLs that openssl fetches itself from the
certificates' CRL Distribution Points (`-crl_download`).

The interleavings themselves are driven one by one in tests/contract/test_revocation_protocol.py;
here the real server and two real processes race, many times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.helpers import openssl
from tests.servers import LocalServer

pytestmark = pytest.mark.slow
ROOT = "example.com"
DEVICES = "devices.example.com"
TIMEOUT = 30


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    """The local server with two workers, publishing CRLs at its own address."""
    with LocalServer(
        tmp_path / "certstore", tmp_path / "server.log", workers=2, public_base_url=True
    ) as running:
        yield running


class Api:
    def __init__(self, url: str) -> None:
        self.url = url
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:  # a connection per thread: the workers race
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(f"{self.url}{path}", json=body, timeout=TIMEOUT)

    def create(self, kind: str, **body: Any) -> dict[str, Any]:
        response = self.post(f"/certificates/{kind}", body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.url}{path}", timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json() if "json" in response.headers["Content-Type"] else response.content


def race(first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
    """Both at once, each on its own connection (so, across the workers)."""
    barrier = threading.Barrier(2)

    def run(operation: Callable[[], Any]) -> Any:
        barrier.wait()
        return operation()

    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(run, first), pool.submit(run, second)]
        return started[0].result(), started[1].result()


def pem_file(path: Path, *pems: str | bytes) -> Path:
    path.write_text("".join(pem if isinstance(pem, str) else pem.decode() for pem in pems))
    return path


def crl_pem(api: Api, ca: str) -> str:
    crl = x509.load_der_x509_crl(api.get(f"/certificates/{ca}/crl"))
    return crl.public_bytes(Encoding.PEM).decode()


def serials_on(api: Api, ca: str) -> set[int]:
    crl = x509.load_der_x509_crl(api.get(f"/certificates/{ca}/crl"))
    return {entry.serial_number for entry in crl}


def build_pki(api: Api) -> dict[str, dict[str, Any]]:
    return {
        ROOT: api.create("root", fqdn=ROOT),
        DEVICES: api.create("intermediate", fqdn=DEVICES, path_length=1),
    }


def refused_by_openssl(
    tmp_path: Path, root_pem: str, chain_pems: str, crls: str, certificate_pem: str
) -> str:
    """openssl verify -crl_check_all's verdict on one certificate: '' when it accepts it."""
    checked = openssl(
        "verify", "-crl_check_all",
        "-CAfile", pem_file(tmp_path / "root.pem", root_pem),
        "-untrusted", pem_file(tmp_path / "chain.pem", chain_pems),
        "-CRLfile", pem_file(tmp_path / "crls.pem", crls),
        pem_file(tmp_path / "leaf.pem", certificate_pem),
    )  # fmt: skip
    return "" if checked.returncode == 0 else checked.stdout + checked.stderr


def test_renewals_racing_revocations_leave_every_generation_revoked(
    server: LocalServer, tmp_path: Path
) -> None:
    api = Api(server.url)
    pki = build_pki(api)
    cell = api.create("intermediate", fqdn=f"cell1.{DEVICES}")
    devices = [api.create("device", parent_fqdn=cell["fqdn"]) for _ in range(200)]
    outcomes = []
    for device in devices:
        fqdn = device["fqdn"]
        outcomes.append(race(
            lambda fqdn=fqdn: api.post(f"/certificates/{fqdn}/renew", {}).status_code,
            lambda fqdn=fqdn: api.post(f"/certificates/{fqdn}/revoke", {}).status_code,
        ))  # fmt: skip
    assert {revoked for _, revoked in outcomes} == {200}
    assert {renewed for renewed, _ in outcomes} <= {201, 409}

    crls = crl_pem(api, ROOT) + crl_pem(api, DEVICES) + crl_pem(api, cell["fqdn"])
    listed = serials_on(api, cell["fqdn"])
    chain = cell["certificate"] + pki[DEVICES]["certificate"]
    checked = 0
    for device in devices:
        for generation in api.get(f"/certificates/{device['fqdn']}/history")["items"]:
            assert generation["status"] == "revoked", generation
            assert int(generation["serial"], 16) in listed
            verdict = refused_by_openssl(
                tmp_path, pki[ROOT]["certificate"], chain, crls, generation["certificate"]
            )
            assert "certificate revoked" in verdict, verdict
            checked += 1
    assert checked > len(devices)  # some renewals won their race: more than one generation


def test_cell_renewals_racing_their_revocation_revoke_the_cell_and_its_devices(
    server: LocalServer, tmp_path: Path
) -> None:
    api = Api(server.url)
    pki = build_pki(api)
    for trial in range(50):
        fqdn = f"cell{trial}.{DEVICES}"
        cell = api.create("intermediate", fqdn=fqdn)
        device = api.create("device", parent_fqdn=fqdn)
        renewed, revoked = race(
            lambda fqdn=fqdn: api.post(f"/certificates/{fqdn}/renew", {}).status_code,
            lambda fqdn=fqdn: api.post(f"/certificates/{fqdn}/revoke", {}).status_code,
        )
        assert revoked == 200 and renewed in (201, 409)
        crls = crl_pem(api, ROOT) + crl_pem(api, DEVICES) + crl_pem(api, fqdn)
        for generation in api.get(f"/certificates/{fqdn}/history")["items"]:
            assert generation["status"] == "revoked"
            verdict = refused_by_openssl(
                tmp_path, pki[ROOT]["certificate"], pki[DEVICES]["certificate"], crls,
                generation["certificate"],
            )  # fmt: skip
            assert "certificate revoked" in verdict, verdict
        shown = api.get(f"/certificates/{device['fqdn']}")
        assert shown["status"] == "revoked" and shown["revoked_with"] == fqdn
        verdict = refused_by_openssl(
            tmp_path, pki[ROOT]["certificate"], cell["certificate"] + pki[DEVICES]["certificate"],
            crls, device["certificate"],
        )  # fmt: skip
        assert "certificate revoked" in verdict, verdict


@pytest.mark.parametrize("revoke_previous", [False, True], ids=["kept", "revoked"])
def test_after_a_ca_rollover_every_worker_answers_with_the_new_ca_certificate(
    server: LocalServer, tmp_path: Path, revoke_previous: bool
) -> None:
    api = Api(server.url)
    pki = build_pki(api)
    cell = f"cell1.{DEVICES}"
    api.create("intermediate", fqdn=cell)
    before = [api.create("device", parent_fqdn=cell) for _ in range(4)]

    renewed = api.post(f"/certificates/{cell}/renew", {"revoke_previous": revoke_previous})
    assert renewed.status_code == 201, renewed.text
    new_cell = renewed.json()["certificate"]
    with ThreadPoolExecutor(8) as pool:  # eight connections: both workers serve them
        after = list(pool.map(lambda _: api.create("device", parent_fqdn=cell), range(100)))

    assert {device["chain"].split("-----END CERTIFICATE-----")[0] for device in after} == {
        new_cell.split("-----END CERTIFICATE-----")[0]
    }
    crls = crl_pem(api, ROOT) + crl_pem(api, DEVICES) + crl_pem(api, cell)
    superseded = serials_on(api, DEVICES)
    old_serial = int(api.get(f"/certificates/{cell}/history")["items"][0]["serial"], 16)
    assert (old_serial in superseded) is revoke_previous
    for device in before + after[:10]:
        served = api.get(f"/certificates/{device['fqdn']}")
        assert served["chain"].startswith(new_cell)
        verdict = refused_by_openssl(
            tmp_path, pki[ROOT]["certificate"], served["chain"], crls, served["certificate"]
        )
        assert verdict == "", verdict


def test_openssl_downloads_the_crls_from_the_distribution_points_itself(
    server: LocalServer, tmp_path: Path
) -> None:
    """`openssl verify -crl_download` sends a bare GET, without Accept or credentials. (The
    root's own CRL comes with the trust anchor: a root names no distribution point, and
    -crl_check_all asks for a CRL of every certificate of the chain, the root's too.)"""
    api = Api(server.url)
    pki = build_pki(api)
    cell = api.create("intermediate", fqdn=f"cell1.{DEVICES}")
    device = api.create("device", parent_fqdn=cell["fqdn"])
    chain = pem_file(tmp_path / "chain.pem", device["chain"])
    arguments = (
        "verify", "-crl_download", "-crl_check_all",
        "-CAfile", pem_file(tmp_path / "root.pem", pki[ROOT]["certificate"]),
        "-CRLfile", pem_file(tmp_path / "root-crl.pem", crl_pem(api, ROOT)),
        "-untrusted", chain, pem_file(tmp_path / "device.pem", device["certificate"]),
    )  # fmt: skip
    points = x509.load_pem_x509_certificate(device["certificate"].encode()).extensions
    url = points.get_extension_for_class(x509.CRLDistributionPoints).value[0].full_name[0].value
    assert url == f"{server.url}/certificates/{cell['fqdn']}/crl"

    accepted = openssl(*arguments)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert api.post(f"/certificates/{device['fqdn']}/revoke", {}).status_code == 200
    refused = openssl(*arguments)
    assert refused.returncode != 0 and "certificate revoked" in refused.stdout + refused.stderr

"""The `make run` server shares bulk signing with a helper process, which dies with the server.

Linux only: the helper is found through /proc.
"""

from __future__ import annotations

import signal
import sys
import time

import pytest
import requests
from cryptography import x509
from cryptography.x509.oid import NameOID

from chalicelib import wiring
from devtools.procfs import child_pids, command_line, cpu_ticks, is_gone
from tests.conftest import LocalServer
from tests.helpers import verify_client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not sys.platform.startswith("linux") or wiring._usable_cpus() < 2,
        reason="the signing helper runs on POSIX with two or more CPUs; /proc finds it (Linux)",
    ),
]
PARENT = "cell.helper.example"


def signing_helper_of(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in child_pids(pid):
            if b"chalicelib.signing_helper" in command_line(child):
                return child
        time.sleep(0.1)
    raise AssertionError(f"no signing helper under server pid {pid}")


def settled_cpu_ticks(pid: int, timeout: float = 30) -> int:
    """The CPU ticks of `pid` once they stop growing for a second (its start-up is over)."""
    deadline = time.monotonic() + timeout
    ticks = cpu_ticks(pid)
    while time.monotonic() < deadline:
        time.sleep(1)
        if (now := cpu_ticks(pid)) == ticks:
            return ticks
        ticks = now
    raise AssertionError(f"pid {pid} kept using CPU for {timeout} s")


def bulk(server: LocalServer, count: int) -> list[dict[str, object]]:
    response = requests.post(
        f"{server.url}/certificates/device",
        json={"parent_fqdn": PARENT, "count": count},
        timeout=120,
    )
    assert response.status_code == 201, response.text
    return response.json()["items"]


def test_bulks_share_signing_with_a_helper_that_dies_with_the_server(
    local_server: LocalServer,
) -> None:
    root = requests.post(
        f"{local_server.url}/certificates/root", json={"fqdn": "helper.example"}, timeout=30
    ).json()
    requests.post(
        f"{local_server.url}/certificates/intermediate", json={"fqdn": PARENT}, timeout=30
    ).raise_for_status()
    assert local_server.process is not None
    server_pid = local_server.process.pid

    first = bulk(local_server, 40)  # signed by the server alone; starts the helper
    helper = signing_helper_of(server_pid)
    before = settled_cpu_ticks(helper)  # done importing: waiting for work
    issued = bulk(local_server, 400)
    assert cpu_ticks(helper) - before >= 2, "the helper did no signing in a bulk of 400"

    for certificate in first + issued:
        verified = verify_client(certificate, root["certificate"])
        assert verified.subjects == [x509.DNSName(str(certificate["fqdn"]))]
        leaf = x509.load_pem_x509_certificate(str(certificate["certificate"]).encode())
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [name.value for name in names] == [certificate["device_id"]]
    assert len({certificate["private_key"] for certificate in issued}) == 400
    local_server.process.send_signal(signal.SIGKILL)
    local_server.process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not is_gone(helper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert is_gone(helper), "the signing helper outlived the server"

"""Figures 1-4, measured in interleaved rounds: each round runs every issuance path once.

The machine's speed drifts (other tenants, the file system's state), so no figure may get a
quiet minute its baseline did not get. Every round measures each path in turn, in windows of one
length; each figure is its best round, as `timeit` recommends, because noise only ever slows a
run down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.figures import (
    DEVICE_PARENT,
    KeepAliveClient,
    RawIssuer,
    create_device_ca,
    durable_write,
    file_create_micros,
    local_server,
    peak_memory_mb,
    post_json,
    rate,
    scratch_directory,
    seed_device_ca,
    timed_window,
)
from chalicelib.config import HELPER_AUTO, HELPER_OFF, SYNC_FULL, SYNC_NORMAL
from chalicelib.model import CertType, IssueRequest, KeyType

ROUNDS = 20  # quick phases of the machine come and go over tens of seconds
BULK = 1000
WARMUP = 3  # untimed calls before each measurement
DEVICE_PATH = "/certificates/device"
WINDOW_SECONDS = 0.25  # each measurement of a path: about as long as one bulk request


@dataclass
class Samples:
    """Rates per path, one per round; the client's CPU seconds per request for HTTP clients."""

    rates: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    client_cpu: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    server_peak_mb: float | None = None
    file_create_us: list[float] = field(default_factory=list)

    def best(self, path: str) -> float:
        return max(self.rates[path])

    def client_ms(self, path: str) -> float:
        return min(self.client_cpu[path]) * 1e3

    def measure(self, path: str, operation: Callable[[], object]) -> None:
        """One window of `path`; the client's CPU per call counts the warm-up calls too."""
        write_back()
        cpu = time.process_time()
        calls, seconds = timed_window(operation, WINDOW_SECONDS, WARMUP)
        self.rates[path].append(calls / seconds)
        self.client_cpu[path].append((time.process_time() - cpu) / (calls + WARMUP))


def write_back() -> None:
    """Write the files of earlier figures to disk now, so that no figure pays for the write-back
    of another's (the page cache would do it in the background, during whatever runs next)."""
    if hasattr(os, "sync"):
        os.sync()


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The in-process service logs audit lines as the server does; both go to /dev/null, so a
    slow terminal is billed to neither."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        yield


def service_with_device_ca(
    directory: str, sync: str = SYNC_NORMAL, signing_helper: str = HELPER_AUTO
) -> Any:
    """The service layer on the local backend (`CERTSTORE_SYNC=sync`, `SIGNING_HELPER=...`) with
    a device CA, made the service that wiring serves (the in-process events reach that one)."""
    import app  # noqa: F401 - registers the inventory handler the local backend calls
    from chalicelib import wiring
    from chalicelib.config import load_settings

    settings = dataclasses.replace(
        load_settings(),
        backend="local",
        certstore_dir=Path(directory),
        certstore_sync=sync,
        signing_helper=signing_helper,
    )
    service = wiring.build_service(settings)
    wiring.override_service(service)
    create_device_ca(service)
    return service


def measure_issuance(rounds: int = ROUNDS) -> Samples:
    from chalicelib import wiring

    samples = Samples()
    raw = RawIssuer()
    samples.rates["crypto RSA_2048"].append(rate(lambda: raw.issue(KeyType.RSA_2048), 30))
    with (
        scratch_directory() as durable_directory,
        scratch_directory() as service_directory,
        scratch_directory() as full_sync_directory,
        scratch_directory() as server_directory,
        scratch_directory() as single_directory,
        local_server(Path(server_directory)) as server,
        local_server(Path(single_directory), SIGNING_HELPER=HELPER_OFF) as single_server,
        quiet_stderr(),
    ):
        written = iter(range(10**9))
        device = IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT)
        # figure 2; each is made the service wiring serves before it is measured
        service = service_with_device_ca(service_directory)
        full_sync_service = service_with_device_ca(full_sync_directory, SYNC_FULL)
        base = f"http://127.0.0.1:{server.port}"
        connection = http.client.HTTPConnection("127.0.0.1", server.port)
        body = {"parent_fqdn": DEVICE_PARENT}
        session = requests.Session()
        minimal = KeepAliveClient(server.port)
        single = KeepAliveClient(single_server.port)
        seed_device_ca(minimal)
        seed_device_ca(single)
        encoded = json.dumps(body).encode()

        def refused() -> None:
            """The same route refused (400) before any service work: HTTP and dispatch only."""
            minimal.post(DEVICE_PATH, b"{}", expect_status=400)

        def durable() -> None:
            durable_write(Path(durable_directory), raw.issue(KeyType.EC_P256), next(written))

        def with_session() -> None:
            session.post(base + DEVICE_PATH, json=body).raise_for_status()

        def new_connection() -> None:
            requests.post(base + DEVICE_PATH, json=body).raise_for_status()

        bulk_body = json.dumps({**body, "count": BULK}).encode()
        # untimed: the first bulk starts the signing helper, which the next ones share work with
        minimal.post(DEVICE_PATH, json.dumps({**body, "count": 100}).encode())

        def timed_bulk(client: KeepAliveClient) -> float:
            write_back()
            started = time.perf_counter()
            issued = client.post(DEVICE_PATH, bulk_body)
            elapsed = time.perf_counter() - started
            if json.loads(issued)["count"] != BULK:  # checked after the clock stopped
                raise RuntimeError(f"the bulk request did not issue {BULK} certificates")
            return BULK / elapsed

        for _ in range(rounds):  # a target's path runs right after its baseline
            samples.file_create_us.append(file_create_micros(Path(durable_directory) / "probe"))
            wiring.override_service(full_sync_service)
            samples.measure("service, full sync", lambda: full_sync_service.create_device(device))
            samples.measure("durable", durable)
            wiring.override_service(service)
            samples.measure("service", lambda: service.create_device(device))
            samples.measure("minimal client", lambda: minimal.post(DEVICE_PATH, encoded))
            samples.measure("http.client", lambda: post_json(connection, DEVICE_PATH, body))
            samples.measure("HTTP floor", refused)
            samples.measure("requests.Session", with_session)
            samples.measure("new connection", new_connection)
            samples.measure("crypto EC_P256", lambda: raw.issue(KeyType.EC_P256))
            samples.rates["bulk"].append(timed_bulk(minimal))
            samples.rates["bulk, helper off"].append(timed_bulk(single))
        minimal.close()
        single.close()
        samples.server_peak_mb = peak_memory_mb(server.pid)
    return samples

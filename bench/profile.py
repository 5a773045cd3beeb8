"""`make bench-profile`: where the time of an issuance goes, in microseconds per certificate.

Two breakdowns, each the best of a few rounds, then a cProfile listing of one bulk request:
- bulk (1000 devices, in process, local backend): the raw crypto of figure 1 next to the stages
  of `create_devices` (signing and record, store write, inventory events, audit, the rest);
- one device over HTTP: the service call in process, then the whole request through the
  `make run` server with timers inside it: the same call there, chalice's dispatch around it,
  and what the HTTP server, the socket and the client add.
"""

from __future__ import annotations

import contextlib
import cProfile
import json
import os
import pstats
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

from bench.figures import (
    DEVICE_PARENT,
    KeepAliveClient,
    RawIssuer,
    RunningServer,
    file_create_micros,
    local_server,
    rate,
    scratch_directory,
    scratch_root,
    seed_device_ca,
    settle_disk,
    timed_window,
)
from bench.issuance import (
    BULK,
    DEVICE_PATH,
    WARMUP,
    WINDOW_SECONDS,
    quiet_stderr,
    service_with_device_ca,
    write_back,
)
from bench.server_timers import DISPATCH, SERVICE, TIMERS_FILE_VARIABLE, Total, timed
from chalicelib.config import HELPER_OFF
from chalicelib.model import CertType, IssueRequest, KeyType

ROUNDS = 3


def _timed(owner: Any, name: str, total: Total) -> contextlib.AbstractContextManager[object]:
    """While in use, `owner.name` adds its time up in `total`."""
    return patch.object(owner, name, timed(getattr(owner, name), total))


def _bulk_micros(service: Any, request: IssueRequest) -> float:
    """Microseconds per certificate of one bulk by `service`, made the service wiring serves (the
    inventory events go to its own), after the files of earlier bulks are written back."""
    from chalicelib import wiring

    wiring.override_service(service)
    write_back()
    started = time.perf_counter()
    service.create_devices(request)
    return (time.perf_counter() - started) * 1e6 / BULK


def bulk_breakdown(directory: str, shared_directory: str) -> Any:
    """Stages of one bulk request per certificate with SIGNING_HELPER=off, and in the same rounds
    the whole bulk with signing shared; best round of each. Returns the first service, which
    wiring serves after."""
    from chalicelib import issuance as issuance_module
    from chalicelib import service as service_module
    from chalicelib import wiring

    shared = service_with_device_ca(shared_directory)
    service = service_with_device_ca(directory, signing_helper=HELPER_OFF)
    if not shared._signer.wait_until_ready(timeout=30):
        print("(the signing helper did not start: the shared bulks are signed in process)")
    request = IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT, count=BULK)
    totals: dict[str, Total] = defaultdict(Total)
    raw = RawIssuer()
    best: dict[str, float] | None = None
    shared_runs = []
    for _ in range(ROUNDS):
        totals.clear()
        disk = file_create_micros(Path(directory) / "probe")
        crypto = 1e6 / rate(lambda: raw.issue(KeyType.EC_P256), 2000)
        with contextlib.ExitStack() as timers:
            for owner, name, label in (
                (issuance_module, "sign_device", "signing (keys, certificates, key PEM)"),
                (service_module, "build_record", "record (PEM, fingerprint)"),
                (service._store, "put_certificate", "store write"),
                (service, "_announce", "inventory events"),
                (service_module, "_audit_issued", "audit lines"),
            ):
                timers.enter_context(_timed(owner, name, totals[label]))
            total = _bulk_micros(service, request)
        stages = {label: timer.seconds * 1e6 / BULK for label, timer in totals.items()}
        stages["rest (ids, lists, responses)"] = total - sum(stages.values())
        run = {"raw crypto (figure 1)": crypto, "disk probe (one file)": disk, **stages}
        run["bulk total"] = total
        if best is None or total < best["bulk total"]:
            best = run
        shared_runs.append(_bulk_micros(shared, request))
    wiring.override_service(service)
    assert best is not None
    print(f"Bulk of {BULK}, in process, SIGNING_HELPER=off, us per certificate (best of {ROUNDS}):")
    for label, micros in best.items():
        print(f"  {label:38s} {micros:7.1f}")
    crypto = best["raw crypto (figure 1)"]
    print(f"  ratio raw crypto / bulk: {crypto / best['bulk total']:.2f}")
    shared_micros = min(shared_runs)
    print(f"  bulk total, signing shared with the helper process: {shared_micros:7.1f}")
    print(f"  ratio raw crypto / bulk, signing shared: {crypto / shared_micros:.2f}")
    return service


def _window_micros(operation: Callable[[], object], warmup: int) -> float:
    """Microseconds per call over one of the bench's windows."""
    calls, seconds = timed_window(operation, WINDOW_SECONDS, warmup)
    return seconds * 1e6 / calls


def _server_totals(server: RunningServer, path: Path) -> dict[str, list[float]]:
    """The timed server's totals since the last call (it writes them on SIGUSR1)."""
    path.unlink(missing_ok=True)
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the timed server wrote no totals")
        time.sleep(0.01)
    return json.loads(path.read_text())


def http_breakdown(service: Any, server_directory: str) -> None:
    """One device: `service` (the one wiring serves) in process, then the whole request through
    the `make run` server with timers inside it (`bench.server_timers`): the same service call
    there, chalice's dispatch around it, and what the HTTP server, socket and client add."""
    request = IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT)
    body = json.dumps({"parent_fqdn": DEVICE_PARENT}).encode()
    totals_file = Path(server_directory) / "timers.json"
    launcher = [sys.executable, "-m", "bench.server_timers"]
    settings = {TIMERS_FILE_VARIABLE: str(totals_file)}
    rounds = []
    with local_server(Path(server_directory) / "store", launcher, **settings) as server:
        client = KeepAliveClient(server.port)
        seed_device_ca(client)
        for _ in range(ROUNDS):
            in_process = _window_micros(lambda: service.create_device(request), WARMUP)
            _server_totals(server, totals_file)  # from here on
            whole = _window_micros(lambda: client.post(DEVICE_PATH, body), 0)  # all counted
            inside = {label: seconds * 1e6 / calls for label, (calls, seconds) in
                      _server_totals(server, totals_file).items()}  # fmt: skip
            rounds.append({
                "service call, in process": in_process,
                "service call, in the server": inside[SERVICE],
                "chalice dispatch around it (event, middleware, view, JSON)":
                    inside[DISPATCH] - inside[SERVICE],
                "HTTP server, socket and client": whole - inside[DISPATCH],
                "HTTP request, minimal keep-alive client": whole,
            })  # fmt: skip
        client.close()
    best = min(rounds, key=lambda stages: stages["HTTP request, minimal keep-alive client"])
    print(f"One device, us per request (the round with the quickest HTTP of {ROUNDS}):")
    for label, micros in best.items():
        print(f"  {label:58s} {micros:7.1f}")
    service_micros = min(stages["service call, in process"] for stages in rounds)
    http_micros = best["HTTP request, minimal keep-alive client"]
    print(f"  ratio service (best round) / HTTP: {service_micros / http_micros:.2f}")


def main() -> int:
    with scratch_root() as root, scratch_directory() as directory:
        print(f"Before measuring, {settle_disk(root / 'settle')}.")
        with quiet_stderr():  # audit and request lines, as the server's go to /dev/null
            with scratch_directory() as shared_directory:
                service = bulk_breakdown(directory, shared_directory)
            with scratch_directory() as server_directory:
                http_breakdown(service, server_directory)
            profiler = cProfile.Profile()
            profiler.enable()
            service.create_devices(
                IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT, count=BULK)
            )
            profiler.disable()
        print(f"\ncProfile of one bulk request of {BULK} (top 20 by own time):")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())

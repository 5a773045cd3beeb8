"""`make bench`'s figures. Each measures one path and the baseline or peer it is compared with,
in the same run, and returns table rows; targets are ratios, so they hold on any machine."""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.servers import (
    DEVICE_PARENT,
    PROJECT_ROOT,
    Endpoint,
    Load,
    cfssl_server,
    our_server,
    wrk,
)
from chalicelib import pki
from chalicelib.model import KeyType, SubjectDetails

HTTP_LOADS = (
    Load("8 concurrent keep-alive clients", 8),
    Load("1 sequential keep-alive client", 1),
    Load("1 sequential client, new connection per request", 1, new_connection_per_request=True),
)


@dataclass(frozen=True)
class Scale:
    """How much each figure measures. `FULL` is `make bench`; `SMOKE` runs every figure's code
    at a tiny size in seconds (tests/e2e/test_bench.py), so the benchmark cannot rot unnoticed;
    its ratios mean nothing."""

    http_seconds: float = 4.0
    http_rounds: int = 3
    bulk: int = 1000
    bulk_rounds: int = 5
    listing: tuple[int, int] = (100_000, 1_000)
    cascade_devices: int = 10_000
    largest_bulks: bool = True
    """Each key type's largest accepted bulk (else two certificates of each)."""
    tail_samples: int = 20
    """Bulks of each RSA key type for its p99 (bench/tails.py)."""
    import_runs: int = 7


FULL = Scale()
SMOKE = Scale(
    http_seconds=1.0, http_rounds=1, bulk=40, bulk_rounds=1, listing=(300, 100),
    cascade_devices=300, largest_bulks=False, tail_samples=2, import_runs=1,
)  # fmt: skip


@dataclass
class Row:
    figure: str
    value: str
    baseline: str = ""
    ratio: float | None = None
    target: str = "info"
    met: bool | None = None  # None: printed for information (or skipped, with the reason)

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        return [self.figure, self.value, self.baseline, ratio, self.target, verdict]


def per_second(value: float) -> str:
    return f"{value:,.0f}/s"


def at_least(figure: str, value: float, baseline: float, shown: str, target: float) -> Row:
    ratio = value / baseline
    return Row(figure, per_second(value), shown, ratio, f">= {target:.2f}", ratio >= target)


def scratch_parent() -> Path:
    """Where the servers under test keep their stores: `BENCH_DIR`, else a memory file system
    (/dev/shm) where there is one, else beside the project. The peer stores nothing, and on the
    VMs these figures were taken on, creating a file on disk costs up to twenty times as much for
    minutes after a large delete (bench/NOTES.md): on disk, the figures would follow the disk's
    history rather than the servers."""
    chosen = os.environ.get("BENCH_DIR")
    if chosen:
        return Path(chosen)
    memory = Path("/dev/shm")
    if memory.is_dir() and os.access(memory, os.W_OK):
        return memory
    return PROJECT_ROOT / "bench"


@contextlib.contextmanager
def scratch(on_disk: bool = False) -> Iterator[Path]:
    """A directory for a server's store: on `scratch_parent()`, or on the project's disk where
    what is measured is a store that syncs to disk."""
    parent = PROJECT_ROOT / "bench" if on_disk else scratch_parent()
    with tempfile.TemporaryDirectory(prefix=".scratch-", dir=parent) as directory:
        yield Path(directory)


# HTTP issuance against cfssl -----------------------------------------------------------------


PEERS = (
    # (what is compared, ours: environment and store on disk?, the peer: with its database?,
    #  target ratio)
    ("ours vs cfssl serve", {}, False, 0.7),
    ("ours with CERTSTORE_SYNC=full vs cfssl serve with its SQLite database",
     {"CERTSTORE_SYNC": "full"}, True, 1.0),
)  # fmt: skip


def http_rows(scale: Scale = FULL) -> list[Row]:
    """For each pair of PEERS, each load against both servers in alternating order,
    `scale.http_rounds` times; each figure is the ratio of the two medians. Stores that sync go
    on the project's disk, both of them; the others on `scratch_parent()`."""
    rows = []
    for compared, environment, on_disk, target in PEERS:
        try:
            with (
                scratch(on_disk) as directory,
                cfssl_server(directory / "cfssl", database=on_disk) as peer,
                our_server(directory / "certstore", **environment) as ours,
            ):
                rates = _interleaved(ours, peer, scale)
        except FileNotFoundError as missing:  # cfssl or wrk
            rows += [Row(f"HTTP issuance, {load.name}: {compared}", f"SKIPPED: {missing}")
                     for load in HTTP_LOADS]  # fmt: skip
            continue
        for load in HTTP_LOADS:
            our_rate = statistics.median(rates[("ours", load.name)])
            peer_rate = statistics.median(rates[("peer", load.name)])
            figure = f"HTTP issuance, {load.name}: {compared}"
            rows.append(at_least(figure, our_rate, peer_rate, per_second(peer_rate), target))
    return rows


def _interleaved(
    ours: Endpoint, peer: Endpoint, scale: Scale
) -> dict[tuple[str, str], list[float]]:
    rates: dict[tuple[str, str], list[float]] = {}
    servers = [("ours", ours), ("peer", peer)]
    for load in HTTP_LOADS if scale.http_rounds > 1 else ():  # warm both: CA loaded, ...
        for _, endpoint in servers:
            wrk(endpoint, load, 1)
    for round_number in range(scale.http_rounds):
        for load in HTTP_LOADS:
            for name, endpoint in servers[:: 1 if round_number % 2 == 0 else -1]:
                rate = wrk(endpoint, load, scale.http_seconds)
                rates.setdefault((name, load.name), []).append(rate)
                print(f"  {name:5} {load.name}: {rate:,.0f}/s", flush=True)
    return rates


# Bulk against raw crypto ---------------------------------------------------------------------


class RawIssuer:
    """The bare pipeline of one device certificate with a CA loaded: key, certificate, PEM."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        key = pki.generate_private_key(KeyType.EC_P256)
        window = pki.Validity(now - timedelta(minutes=5), now + timedelta(days=30))
        subject = pki.build_subject(DEVICE_PARENT, SubjectDetails())
        ca = pki.sign_certificate(pki.root_profile(), subject, key.public_key(), window, None, key)
        self.authority = pki.SigningAuthority(ca, key)
        self.validity = pki.Validity(now - timedelta(minutes=5), now + timedelta(days=1))

    def issue(self, key_type: KeyType = KeyType.EC_P256) -> bytes:
        key = pki.generate_private_key(key_type)
        certificate = pki.sign_certificate(
            pki.device_profile(key_type, "device.cell.bench.example"),
            pki.build_subject("device", SubjectDetails()),
            key.public_key(),
            self.validity,
            self.authority,
        )
        return (pki.certificate_to_pem(certificate) + pki.private_key_to_pem(key)).encode()


def rate(operation: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


def bulk_rows(scale: Scale = FULL) -> list[Row]:
    """A bulk of `scale.bulk` over HTTP against the raw crypto of one core, rounds interleaved,
    medians; and the peak memory of every process of the server."""
    raw = RawIssuer()
    raw_rates, bulk_rates = [], []
    with scratch() as directory, our_server(directory / "certstore") as server:
        body = f'{{"parent_fqdn": "{DEVICE_PARENT}", "count": {scale.bulk}}}'.encode()

        def bulk() -> None:
            request = urllib.request.Request(
                server.url, body, {"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()

        for _ in range(4):  # the pools of both workers start (their first bulk is in process)
            bulk()
        for _ in range(scale.bulk_rounds):
            raw_rates.append(rate(raw.issue, scale.bulk))
            bulk_rates.append(rate(bulk, 1) * scale.bulk)
        peak = server.peak_memory_mb()
    raw_rate, bulk_rate = statistics.median(raw_rates), statistics.median(bulk_rates)
    return [
        Row("raw crypto, one core: EC P-256 key + certificate + PEM", per_second(raw_rate)),
        at_least(f"bulk of {scale.bulk} devices, one HTTP request", bulk_rate, raw_rate,
                 "raw crypto", 0.5),
        Row("peak memory of the whole server (master, workers, signing processes)",
            f"{peak:.0f} MB", target="< 300 MB", met=peak < 300),
    ]  # fmt: skip

"""`make bench`'s figures. Each measures one path and the baseline or peer it is compared with,
in the same run, and returns table rows; targets are ratios, so they hold on any machine."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
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
HTTP_ROUNDS = 3
HTTP_SECONDS = 4.0
BULK = 1000
BULK_ROUNDS = 5


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
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=".scratch-", dir=scratch_parent()) as directory:
        yield Path(directory)


# HTTP issuance against cfssl -----------------------------------------------------------------


def http_rows() -> list[Row]:
    """Each load against both servers, in alternating order, `HTTP_ROUNDS` times; each figure
    is the ratio of the two medians."""
    try:
        with (
            cfssl_server() as peer,
            scratch() as directory,
            our_server(directory / "certstore") as ours,
        ):
            rates = _interleaved(ours, peer)
    except FileNotFoundError as missing:  # cfssl or wrk
        return [Row(f"HTTP issuance, {load.name}: vs cfssl serve", f"SKIPPED: {missing}")
                for load in HTTP_LOADS]  # fmt: skip
    rows = []
    for load in HTTP_LOADS:
        our_rate = statistics.median(rates[("ours", load.name)])
        peer_rate = statistics.median(rates[("cfssl", load.name)])
        figure = f"HTTP issuance, {load.name}: ours vs cfssl serve"
        rows.append(at_least(figure, our_rate, peer_rate, per_second(peer_rate), 0.5))
    return rows


def _interleaved(ours: Endpoint, peer: Endpoint) -> dict[tuple[str, str], list[float]]:
    rates: dict[tuple[str, str], list[float]] = {}
    servers = [("ours", ours), ("cfssl", peer)]
    for load in HTTP_LOADS:  # warm both: CA loaded, first connections made
        for _, endpoint in servers:
            wrk(endpoint, load, 1)
    for round_number in range(HTTP_ROUNDS):
        for load in HTTP_LOADS:
            for name, endpoint in servers[:: 1 if round_number % 2 == 0 else -1]:
                rate = wrk(endpoint, load, HTTP_SECONDS)
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


def bulk_rows() -> list[Row]:
    """A bulk of 1000 over HTTP against the raw crypto of one core, rounds interleaved, medians;
    and the peak memory of every process of the server."""
    raw = RawIssuer()
    raw_rates, bulk_rates = [], []
    with scratch() as directory, our_server(directory / "certstore") as server:
        body = f'{{"parent_fqdn": "{DEVICE_PARENT}", "count": {BULK}}}'.encode()

        def bulk() -> None:
            request = urllib.request.Request(
                server.url, body, {"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()

        for _ in range(4):  # the pools of both workers start (their first bulk is in process)
            bulk()
        for _ in range(BULK_ROUNDS):
            raw_rates.append(rate(raw.issue, BULK))
            bulk_rates.append(rate(bulk, 1) * BULK)
        peak = server.peak_memory_mb()
    raw_rate, bulk_rate = statistics.median(raw_rates), statistics.median(bulk_rates)
    return [
        Row("raw crypto, one core: EC P-256 key + certificate + PEM", per_second(raw_rate)),
        at_least(f"bulk of {BULK} devices, one HTTP request", bulk_rate, raw_rate,
                 "raw crypto", 0.5),
        Row("peak memory of the whole server (master, workers, signing processes)",
            f"{peak:.0f} MB", target="< 300 MB", met=peak < 300),
    ]  # fmt: skip


# Listing, cold start, AWS calls --------------------------------------------------------------


def listing_rows() -> list[Row]:
    """The SQLite inventory filled directly; a page of 100 from the middle of each parent."""
    from chalicelib.inventory import SqliteInventory

    sizes = {"big.bench.example": 100_000, "small.bench.example": 1_000}
    with scratch() as directory:
        inventory = SqliteInventory(directory / "inventory.sqlite3")
        connection = sqlite_connection(inventory)
        for parent, size in sizes.items():
            rows = (
                (f"{index:08d}.{parent}", parent, "Client", "2030-01-01", "ab",
                 "2030-01-01T00:00:00Z", "EC_P256", "00", "2026-01-01T00:00:00Z", "active", None)
                for index in range(size)
            )  # fmt: skip
            with inventory.batch():
                connection.executemany(
                    "INSERT INTO inventory VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                )
        seconds = {
            parent: statistics.median(
                1 / rate(lambda p=parent: inventory.list_children(p, 100, f"00000400.{p}"), 300)
                for _ in range(3)
            )
            for parent in sizes
        }
    big, small = seconds["big.bench.example"], seconds["small.bench.example"]
    return [
        Row("list a page of 100: 100,000 vs 1,000 children", f"{big * 1e3:.2f} ms",
            f"{small * 1e3:.2f} ms", big / small, "<= 1.50", big / small <= 1.5)
    ]  # fmt: skip


def sqlite_connection(inventory: object) -> object:
    return inventory._connection()  # type: ignore[attr-defined]


def _import_seconds(statement: str, environment: dict[str, str], runs: int = 7) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment,
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        samples.append(float(output.strip().splitlines()[-1]))
    return statistics.median(samples)


def cold_start_rows() -> list[Row]:
    dev = dict(os.environ, BACKEND="aws", CERTIFICATE_BUCKET_NAME="b", INVENTORY_TABLE_NAME="t")
    dependencies = _import_seconds("import chalice, boto3, cryptography.x509", dev)
    application = _import_seconds("import app", dev)
    local = dict(os.environ, BACKEND="local")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, app; print('boto3' in sys.modules)"],
        cwd=PROJECT_ROOT, env=local, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    return [
        Row("cold start: import app (dev stage)", f"{application * 1e3:.0f} ms",
            f"{dependencies * 1e3:.0f} ms deps", application / dependencies, "<= 1.20",
            application / dependencies <= 1.2),
        Row("local stage imports boto3", loaded, target="False", met=loaded == "False"),
    ]  # fmt: skip


def aws_call_rows() -> list[Row]:
    """API calls a warm process makes per issuance, counted with a botocore hook under moto."""
    import boto3
    from moto import mock_aws

    from chalicelib import wiring
    from chalicelib.config import load_settings
    from chalicelib.model import CertType, IssueRequest
    from devtools.aws_resources import AWS_ENVIRONMENT, UNSAFE_VARIABLES, create_aws_resources

    calls: list[str] = []
    for name in UNSAFE_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(AWS_ENVIRONMENT)
    with mock_aws(), open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
        session = boto3.session.Session()
        os.environ["KMS_KEY_ID"] = create_aws_resources(session, AWS_ENVIRONMENT)["kms_key_id"]
        session.events.register("before-call", lambda model, **_: calls.append(model.name))
        service = wiring.build_service(load_settings(), boto_session=session)
        service.create_root(IssueRequest(CertType.ROOT, fqdn="bench.example"))
        service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=DEVICE_PARENT))
        device = IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT)
        service.create_device(device)  # warm: the CA is loaded and checked
        counts = {}
        for label, issue in (
            ("device", lambda: service.create_device(device)),
            ("server", lambda: service.create_server(
                IssueRequest(CertType.SERVER, fqdn="mqtt.cell.bench.example"))),
        ):  # fmt: skip
            calls.clear()
            issue()
            counts[label] = list(calls)
    return [
        Row(f"AWS calls per {label} issuance (warm, moto)",
            f"{len(counts[label])}: {', '.join(counts[label])}", target=f"<= {limit}",
            met=len(counts[label]) <= limit)
        for label, limit in (("device", 2), ("server", 3))
    ]  # fmt: skip


# Platform limits (API Gateway 29 s, Lambda 6 MB) ---------------------------------------------

LAMBDA_FULL_VCPU_MB = 1769
"""Lambda's CPU share grows with memory; at 1,769 MB a function has one full vCPU."""
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024


def _lambda_settings() -> tuple[int, int]:
    """The API function's memory (MB) and timeout (s) from .chalice/config.json's dev stage."""
    import json

    stage = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
    function = stage["lambda_functions"]["api_handler"]
    return function["lambda_memory_size"], function["lambda_timeout"]


def limit_rows() -> list[Row]:
    """Every largest accepted bulk, signed in process as the Lambda signs it: the slowest one's
    CPU time, scaled to the Lambda's CPU share, against its timeout; the largest response
    (the Lambda proxy payload) against Lambda's 6 MB."""
    import json

    from chalice.test import Client

    from chalicelib import wiring
    from chalicelib.api.parsing import MAX_BULK, MAX_BULK_BY_KEY_TYPE

    memory_mb, timeout_s = _lambda_settings()
    share = memory_mb / LAMBDA_FULL_VCPU_MB
    cpu: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with (
        scratch() as directory,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stderr(devnull),
        environment(CERTSTORE_DIR=str(directory), BACKEND="local", SIGNING_PROCESSES="0"),
    ):
        wiring.reset()
        from app import app

        with Client(app, stage_name="test") as client:
            subject = {"organization": "O" * 64}
            for kind, body in (("root", {"fqdn": "bench.example"}),
                               ("intermediate", {"fqdn": DEVICE_PARENT})):  # fmt: skip
                client.http.post(f"/certificates/{kind}", headers=JSON,
                                 body=json.dumps({**body, **subject}))  # fmt: skip
            for key_type in ("EC_P256", "EC_P384", "ED25519", *MAX_BULK_BY_KEY_TYPE):
                count = MAX_BULK_BY_KEY_TYPE.get(key_type, MAX_BULK)
                label = f"{key_type} x {count}"
                body = {"parent_fqdn": DEVICE_PARENT, "count": count, "key_type": key_type}
                started = time.process_time()
                response = client.http.post("/certificates/device", headers=JSON,
                                            body=json.dumps({**body, **subject}))  # fmt: skip
                cpu[label] = time.process_time() - started
                if response.status_code != 201:
                    raise RuntimeError(f"{label}: {response.status_code} {response.body[:200]!r}")
                payload = {"statusCode": 201, "body": response.body.decode()}
                sizes[label] = len(json.dumps(payload))
        wiring.reset()
    slowest = max(cpu, key=cpu.__getitem__)
    largest = max(sizes, key=sizes.__getitem__)
    at_lambda = cpu[slowest] / share
    return [
        Row(f"slowest accepted bulk ({slowest}), in process: at {memory_mb} MB "
            f"({share:.2f} vCPU)", f"{at_lambda:.1f} s", f"{timeout_s} s timeout",
            at_lambda / timeout_s, "<= 0.50", at_lambda / timeout_s <= 0.5),
        Row(f"largest accepted bulk response ({largest})", f"{sizes[largest] / 1e6:.2f} MB",
            "6 MB Lambda limit", sizes[largest] / LAMBDA_RESPONSE_LIMIT, "<= 0.50",
            sizes[largest] / LAMBDA_RESPONSE_LIMIT <= 0.5),
    ]  # fmt: skip


JSON = {"Content-Type": "application/json"}


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """These environment variables for the block, the previous ones restored after it."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

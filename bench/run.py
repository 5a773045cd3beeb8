"""`make bench`: issuance and listing figures, each next to a baseline measured in the same run.

Prints a table, writes bench/RESULTS.md, and exits non-zero when a target is missed. Targets are
ratios to the baseline, so they hold on a noisy machine. Standard library + the project's deps.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests

from bench.figures import (
    DEVICE_PARENT,
    PROJECT_ROOT,
    RawIssuer,
    durable_write,
    local_server,
    peak_memory_mb,
    post_json,
    rate,
    scratch_directory,
    server_pid,
)
from chalicelib.model import KeyType


@dataclass
class Row:
    figure: str
    value: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None  # None: printed for information only

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        verdict = {True: "met", False: "MISSED", None: ""}[self.met]
        return [self.figure, self.value, self.baseline, ratio, self.target, verdict]


def per_second(value: float) -> str:
    return f"{value:,.0f}/s"


def crypto_figures(rows: list[Row]) -> dict[str, float]:
    raw = RawIssuer()
    ec = rate(lambda: raw.issue(KeyType.EC_P256), 2000)
    rsa = rate(lambda: raw.issue(KeyType.RSA_2048), 30, warmup=2)
    with scratch_directory() as directory:
        counter = iter(range(10**9))
        durable = rate(
            lambda: durable_write(Path(directory), raw.issue(KeyType.EC_P256), next(counter)), 500
        )
    rows.append(Row("1 crypto EC_P256 (key+sign+PEM)", per_second(ec), "", None, "baseline", None))
    rows.append(
        Row("1 crypto RSA_2048 (key+sign+PEM)", per_second(rsa), "", None, "baseline", None)
    )
    rows.append(
        Row("1 crypto EC_P256 + durable write", per_second(durable), "", None, "baseline", None)
    )
    return {"ec": ec, "durable": durable}


def service_figure(rows: list[Row], baselines: dict[str, float]) -> float:
    from chalicelib import wiring
    from chalicelib.model import CertType, IssueRequest

    with scratch_directory() as directory:
        os.environ.update(CERTSTORE_DIR=directory, BACKEND="local")
        import app  # noqa: F401 - registers the inventory handler the local backend calls

        wiring.reset()
        service = wiring.certificate_service()
        service.create_root(IssueRequest(CertType.ROOT, fqdn="bench.example"))
        service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=DEVICE_PARENT))
        request = IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT)
        value = rate(lambda: service.create_device(request), 1000)
        wiring.reset()
    ratio = value / baselines["durable"]
    rows.append(
        Row(
            "2 service, local backend",
            per_second(value),
            "durable (1)",
            ratio,
            ">= 0.70",
            ratio >= 0.7,
        )
    )
    return value


def http_figures(rows: list[Row], service_rate: float, ec_rate: float) -> float:
    import http.client

    with scratch_directory() as directory, local_server(Path(directory)) as port:
        base = f"http://127.0.0.1:{port}"
        connection = http.client.HTTPConnection("127.0.0.1", port)
        post_json(connection, "/certificates/root", {"fqdn": "bench.example"})
        post_json(connection, "/certificates/intermediate", {"fqdn": DEVICE_PARENT})
        body = {"parent_fqdn": DEVICE_PARENT}
        session = requests.Session()

        def keep_alive() -> None:
            session.post(f"{base}/certificates/device", json=body).raise_for_status()

        def new_connection() -> None:
            requests.post(f"{base}/certificates/device", json=body).raise_for_status()

        kept = rate(keep_alive, 500)
        fresh = rate(new_connection, 300)
        light = rate(lambda: post_json(connection, "/certificates/device", body), 500)

        started = time.perf_counter()
        bulk = post_json(connection, "/certificates/device", {**body, "count": 1000})
        bulk_rate = bulk["count"] / (time.perf_counter() - started)
        pid = server_pid(port)
        peak = peak_memory_mb(pid) if pid else None
    ratio = kept / service_rate
    rows.append(
        Row(
            "3 HTTP keep-alive (requests.Session)",
            per_second(kept),
            "service (2)",
            ratio,
            ">= 0.50",
            ratio >= 0.5,
        )
    )
    rows.append(
        Row(
            "3 HTTP keep-alive (http.client)",
            per_second(light),
            "service (2)",
            light / service_rate,
            "info",
            None,
        )
    )
    rows.append(
        Row(
            "3 HTTP keep-alive vs new connection",
            per_second(kept),
            per_second(fresh),
            kept / fresh,
            ">= 1.00",
            kept >= fresh,
        )
    )
    ratio = bulk_rate / ec_rate
    rows.append(
        Row(
            "4 bulk 1000 devices, one request",
            per_second(bulk_rate),
            "crypto EC (1)",
            ratio,
            ">= 0.50",
            ratio >= 0.5,
        )
    )
    if peak is None:
        rows.append(
            Row(
                "4 bulk: server peak memory",
                "unmeasured (no ss or /proc)",
                "",
                None,
                "< 200 MB",
                False,
            )
        )
    else:
        rows.append(
            Row("4 bulk: server peak memory", f"{peak:.0f} MB", "", None, "< 200 MB", peak < 200)
        )
    return kept


def peer_figure(rows: list[Row], http_rate: float, count: int = 1000) -> None:
    if shutil.which("openssl") is None:
        rows.append(
            Row("5 peer: openssl CLI", "openssl not installed", "", None, "ours >= 10x", False)
        )
        return
    script = f"""set -e
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \\
  -subj /CN=bench.example -days 30 2>/dev/null
for i in $(seq {count}); do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d.key -out d.csr \\
    -subj /CN=device 2>/dev/null
  openssl x509 -req -in d.csr -CA ca.pem -CAkey ca.key -days 1 -out d.pem 2>/dev/null
done
"""
    with scratch_directory() as directory:
        started = time.perf_counter()
        subprocess.run(["bash", "-c", script], cwd=directory, check=True)
        peer = count / (time.perf_counter() - started)
    ratio = http_rate / peer
    rows.append(
        Row(
            "5 HTTP (3) vs openssl CLI per certificate",
            per_second(http_rate),
            per_second(peer),
            ratio,
            ">= 10",
            ratio >= 10,
        )
    )


def listing_figure(rows: list[Row]) -> None:
    """The SQLite inventory pre-filled directly; a page of 100 from the middle of each parent."""
    from chalicelib.inventory import SqliteInventory

    sizes = {"big.bench.example": 100_000, "small.bench.example": 1_000}
    with scratch_directory() as directory:
        inventory = SqliteInventory(Path(directory) / "inventory.sqlite3")
        connection = inventory._connection()
        for parent, size in sizes.items():
            rows_to_insert = (
                (f"{index:08d}.{parent}", parent, "Client", "2030-01-01", "ab",
                 "2030-01-01T00:00:00Z", "EC_P256", "00", "2026-01-01T00:00:00Z", "active", None)
                for index in range(size)
            )  # fmt: skip
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT INTO inventory VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows_to_insert
            )
            connection.execute("COMMIT")
        seconds = {
            parent: 1 / rate(lambda p=parent: inventory.list_children(p, 100, f"00000400.{p}"), 300)
            for parent in sizes
        }
    big, small = seconds["big.bench.example"], seconds["small.bench.example"]
    rows.append(
        Row(
            "6 list a page of 100: 100,000 vs 1,000 children",
            f"{big * 1e3:.2f} ms",
            f"{small * 1e3:.2f} ms",
            big / small,
            "<= 1.50",
            big / small <= 1.5,
        )
    )


def _import_seconds(statement: str, environment: dict[str, str], runs: int = 7) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    samples = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=environment, capture_output=True,
            text=True, check=True,
        ).stdout  # fmt: skip
        samples.append(float(output.strip().splitlines()[-1]))
    return statistics.median(samples)


def cold_start_figures(rows: list[Row]) -> None:
    dev = dict(os.environ, BACKEND="aws", CERTIFICATE_BUCKET_NAME="b", INVENTORY_TABLE_NAME="t")
    dependencies = _import_seconds("import chalice, boto3, cryptography.x509", dev)
    application = _import_seconds("import app", dev)
    ratio = application / dependencies
    rows.append(
        Row(
            "7 cold start: import app (dev stage)",
            f"{application * 1e3:.0f} ms",
            f"{dependencies * 1e3:.0f} ms deps",
            ratio,
            "<= 1.20",
            ratio <= 1.2,
        )
    )
    local = dict(os.environ, BACKEND="local")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, app; print('boto3' in sys.modules)"],
        cwd=PROJECT_ROOT, env=local, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    rows.append(Row("7 local stage imports boto3", loaded, "", None, "False", loaded == "False"))


def aws_call_figures(rows: list[Row]) -> None:
    """API calls a warm process makes per issuance, counted with a botocore hook under moto."""
    import boto3
    from moto import mock_aws

    from chalicelib import wiring
    from chalicelib.config import load_settings
    from chalicelib.model import CertType, IssueRequest
    from devtools.aws_resources import AWS_ENVIRONMENT, create_aws_resources

    calls: list[str] = []
    os.environ.update(AWS_ENVIRONMENT)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
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
    for label, limit in (("device", 2), ("server", 3)):
        made = counts[label]
        rows.append(
            Row(
                f"8 AWS calls per {label} (warm, moto)",
                f"{len(made)}: {', '.join(made)}",
                "",
                None,
                f"<= {limit}",
                len(made) <= limit,
            )
        )


def versions() -> str:
    import chalice
    import cryptography

    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False)
    return (
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"chalice {chalice.__version__}, {openssl.stdout.strip() or 'no openssl'}"
    )


def render(rows: list[Row]) -> str:
    header = ["figure", "measured", "baseline", "ratio", "target", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    started = time.perf_counter()
    rows: list[Row] = []
    baselines = crypto_figures(rows)
    service_rate = service_figure(rows, baselines)
    http_rate = http_figures(rows, service_rate, baselines["ec"])
    peer_figure(rows, http_rate)
    listing_figure(rows)
    cold_start_figures(rows)
    aws_call_figures(rows)
    table = render(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    report = (
        f"# Benchmark results\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine}; "
        f"{versions()}; `make bench` took {time.perf_counter() - started:.0f} s.\n\n{table}\n"
    )
    print(report)
    (PROJECT_ROOT / "bench" / "RESULTS.md").write_text(report)
    missed = [row.figure for row in rows if row.met is False]
    if missed:
        print("MISSED: " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

from bench.figures import (
    DEVICE_PARENT,
    PROJECT_ROOT,
    create_device_ca,
    rate,
    scratch_directory,
    scratch_root,
    settle_disk,
)
from bench.issuance import (
    BULK,
    ROUNDS,
    WINDOW_SECONDS,
    Samples,
    measure_issuance,
    quiet_stderr,
)

SLOW_FILE_CREATE_MICROS = 100  # a round above this met the disk's slow window (README)


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


def compared(
    samples: Samples, label: str, path: str, baseline: str, shown_as: str, target: float | None
) -> Row:
    """A path's best round against its baseline's; `target` None: printed for information."""
    ratio = samples.best(path) / samples.best(baseline)
    return Row(
        label,
        per_second(samples.best(path)),
        shown_as,
        ratio,
        "info" if target is None else f">= {target:.2f}",
        None if target is None else ratio >= target,
    )


def issuance_rows(rows: list[Row], samples: Samples) -> float:
    """Figures 1-4 from the interleaved rounds; returns the HTTP rate figure 5 compares."""
    for label, path in (
        ("1 crypto EC_P256 (key+sign+PEM)", "crypto EC_P256"),
        ("1 crypto RSA_2048 (key+sign+PEM)", "crypto RSA_2048"),
        ("1 crypto EC_P256 + durable write", "durable"),
    ):
        rows.append(Row(label, per_second(samples.best(path)), "", None, "baseline", None))
    rows.append(
        compared(samples, "2 service, local backend", "service", "durable", "durable (1)", 0.7)
    )
    rows.append(
        compared(samples, "2 service, CERTSTORE_SYNC=full (fsync of file, directory and SQLite)",
                 "service, full sync", "durable", "durable (1)", None)
    )  # fmt: skip
    for client in ("minimal client", "http.client", "requests.Session"):
        cpu = samples.client_ms(client)
        label = f"3 HTTP keep-alive, {client} ({cpu:.2f} ms client CPU per request)"
        target = 0.5 if client == "minimal client" else None
        rows.append(compared(samples, label, client, "service", "service (2)", target))
    rows.append(
        Row("3 HTTP floor: the same route answering 400 before any service work",
            per_second(samples.best("HTTP floor")), "", None, "info", None)
    )  # fmt: skip
    rows.append(
        compared(samples, "3 requests.Session keep-alive vs requests.post new connection",
                 "requests.Session", "new connection",
                 per_second(samples.best("new connection")), 1.0)
    )  # fmt: skip
    rows.append(
        compared(samples, f"4 bulk {BULK} devices, one request (signing shared with the helper "
                 "process)", "bulk", "crypto EC_P256", "crypto EC (1)", 0.5)
    )  # fmt: skip
    rows.append(
        compared(samples, f"4 bulk {BULK} devices, SIGNING_HELPER=off (the server process alone)",
                 "bulk, helper off", "crypto EC_P256", "crypto EC (1)", None)
    )  # fmt: skip
    created = samples.file_create_us
    rows.append(
        Row("disk: create + write one small file, best / worst round",
            f"{min(created):.0f} / {max(created):.0f} us", "", None, "info", None)
    )  # fmt: skip
    peak = samples.server_peak_mb
    rows.append(
        Row("4 bulk: server peak memory (server + helper process)",
            "unmeasured (no /proc)" if peak is None else f"{peak:.0f} MB", "", None,
            "< 200 MB", peak is not None and peak < 200)
    )  # fmt: skip
    return samples.best("minimal client")


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
    from devtools.aws_resources import AWS_ENVIRONMENT, UNSAFE_VARIABLES, create_aws_resources

    calls: list[str] = []
    for name in UNSAFE_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(AWS_ENVIRONMENT)
    with mock_aws(), quiet_stderr():  # the service's audit lines
        session = boto3.session.Session()
        os.environ["KMS_KEY_ID"] = create_aws_resources(session, AWS_ENVIRONMENT)["kms_key_id"]
        session.events.register("before-call", lambda model, **_: calls.append(model.name))
        service = wiring.build_service(load_settings(), boto_session=session)
        create_device_ca(service)
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
    with scratch_root() as root:
        disk = settle_disk(root / "settle")
        print(f"disk: {disk}", flush=True)
        samples = measure_issuance()
        http_rate = issuance_rows(rows, samples)
        peer_figure(rows, http_rate)
        listing_figure(rows)
    cold_start_figures(rows)
    aws_call_figures(rows)
    table = render(rows)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    report = (
        f"# Benchmark results\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine}; "
        f"{versions()}; `make bench` took {time.perf_counter() - started:.0f} s.\n\n"
        f"Before measuring, {disk}. Figures 1-4 are each the best of {ROUNDS} interleaved "
        f"rounds of {WINDOW_SECONDS} s windows.\n\n{table}\n"
    )
    print(report)
    (PROJECT_ROOT / "bench" / "RESULTS.md").write_text(report)
    missed = [row.figure for row in rows if row.met is False]
    if missed:
        print("MISSED: " + "; ".join(missed), file=sys.stderr)
        slowest = max(samples.file_create_us)
        if slowest > SLOW_FILE_CREATE_MICROS:
            print(
                f"The disk was slow in this run (creating a file took up to {slowest:.0f} us in a "
                "round): a run started five minutes after the last large delete (a test run, an "
                "earlier bench run) meets fewer slow rounds; see the README's Benchmarks.",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench`'s figures of the service beside its issuance: listing, cold start, AWS calls."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

from bench.figures import FULL, Row, Scale, rate, scratch
from bench.limits import moto_account
from bench.servers import DEVICE_PARENT, PROJECT_ROOT


def listing_rows(scale: Scale = FULL) -> list[Row]:
    """The SQLite inventory filled through its own interface (one transaction a parent); a page
    of 100 from the middle of each parent."""
    from chalicelib.adapters.local.inventory import SqliteInventory
    from chalicelib.model import CertType, InventoryItem

    sizes = {"big.bench.example": scale.listing[0], "small.bench.example": scale.listing[1]}
    (big_parent, big_size), (small_parent, small_size) = sizes.items()
    with scratch() as directory:
        inventory = SqliteInventory(directory / "inventory.sqlite3")
        for parent, size in sizes.items():
            with inventory.batch():
                for index in range(size):
                    inventory.record_certificate(
                        InventoryItem(
                            f"{index:08d}.{parent}", parent, CertType.CLIENT, "2030-01-01", "ab",
                            "2030-01-01T00:00:00Z", "EC_P256", "00", "2026-01-01T00:00:00Z",
                        )
                    )  # fmt: skip
        seconds = {
            parent: statistics.median(
                1
                / rate(
                    lambda p=parent, s=size: inventory.list_children(p, 100, f"{s // 2:08d}.{p}"),
                    300,
                )
                for _ in range(3)
            )
            for parent, size in sizes.items()
        }
    big, small = seconds[big_parent], seconds[small_parent]
    return [
        Row(f"list a page of 100: {big_size:,} vs {small_size:,} children", f"{big * 1e3:.2f} ms",
            f"{small * 1e3:.2f} ms", big / small, "<= 1.50", big / small <= 1.5)
    ]  # fmt: skip


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


def cold_start_rows(scale: Scale = FULL) -> list[Row]:
    dev = dict(os.environ, BACKEND="aws", CERTIFICATE_BUCKET_NAME="b", INVENTORY_TABLE_NAME="t")
    dependencies = _import_seconds(
        "import chalice, boto3, cryptography.x509", dev, scale.import_runs
    )
    application = _import_seconds("import app", dev, scale.import_runs)
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


def aws_call_rows(scale: Scale = FULL) -> list[Row]:
    """API calls a warm process makes per issuance, counted with a botocore hook under moto."""
    from chalicelib import wiring
    from chalicelib.config import load_settings
    from chalicelib.model import CertType, IssueRequest

    calls: list[str] = []
    with moto_account() as (session, _):
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
    # Under a chain of two CAs: the CA's current generation (1), the signature (KMS Sign: the
    # CAs' keys are in KMS, the AWS default), the write, the look after it (2 listings per CA of
    # the chain, made together), the event; for a server, ACM, and its look takes in its own
    # name (2 more listings, made with the chain's: a deleted name stays revoked).
    return [
        Row(f"AWS calls per {label} issuance, 2 CAs above (warm, moto)",
            f"{len(counts[label])}: {', '.join(counts[label])}", target=f"<= {limit}",
            met=len(counts[label]) <= limit)
        for label, limit in (("device", 8), ("server", 11))
    ]  # fmt: skip

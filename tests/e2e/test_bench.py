"""`make bench` cannot rot: every figure runs, at a tiny size, through the benchmark's own entry
point; the ratios of so short a run mean nothing, so only that each figure is there is checked,
and that the figures that are counts, not timings, meet their targets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs import PROJECT_ROOT

pytestmark = pytest.mark.slow

FIGURES = (
    "HTTP issuance, 8 concurrent keep-alive clients: ours vs cfssl serve",
    "HTTP issuance, 1 sequential keep-alive client: ours vs cfssl serve",
    "HTTP issuance, 1 sequential client, new connection per request: ours vs cfssl serve",
    "HTTP issuance, 8 concurrent keep-alive clients: ours with CERTSTORE_SYNC=full vs cfssl "
    "serve with its SQLite database",
    "raw crypto, one core",
    "bulk of 40 devices, one HTTP request",
    "peak memory of the whole server",
    "slowest accepted bulk",
    "largest accepted bulk response",
    "RSA_2048 x 1, p99 of 2 bulks",
    "RSA_3072 x 1, p99 of 2 bulks",
    "RSA_4096 x 1, p99 of 2 bulks",
    "AWS IoT bulk of 2 devices with things",
    "CA revocation to AWS IoT",
    "the walk's own CPU per device",
    "list a page of 100",
    "cold start: import app",
    "local stage imports boto3",
    "AWS calls per device issuance",
    "AWS calls per server issuance",
    "device issuance in process under a PKCS#11 (SoftHSM2) CA vs a file-key CA",
    "KMS calls per device issuance under a KMS CA",
    "KMS calls per bulk of 3 under a KMS CA",
    "bulk of 3 under a KMS CA, modelled",
)
COUNTED = (
    "local stage imports boto3",
    "AWS calls per device issuance",
    "AWS calls per server issuance",
    "KMS calls per device issuance under a KMS CA",
    "KMS calls per bulk of 3 under a KMS CA",
)
"""Figures that count calls or modules: the same at any size, so the smoke run checks them."""


def test_every_figure_of_make_bench_runs(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in output.read_text().splitlines() if line.startswith("| ")][1:]
    cells = {row.split(" | ")[0].removeprefix("| "): row.split(" | ") for row in rows}
    measured = {name: row[1] for name, row in cells.items()}
    for figure in FIGURES:
        found = [value for name, value in measured.items() if name.startswith(figure)]
        assert found, f"no row for {figure!r} in:\n{output.read_text()}"
        peers_missing = shutil.which("cfssl") is None or shutil.which("wrk") is None
        if found[0].startswith("SKIPPED"):
            softhsm_missing = shutil.which("softhsm2-util") is None
            assert (peers_missing and figure.startswith("HTTP issuance")) or (
                softhsm_missing and "PKCS#11" in figure
            ), found[0]
        else:
            assert found[0].strip(), figure
    for figure in COUNTED:
        row = next(row for name, row in cells.items() if name.startswith(figure))
        assert row[-1].removesuffix(" |").strip() == "met", row

"""`make bench`: every figure next to its baseline or peer, measured in the same run.

Prints a table, writes bench/RESULTS.md, and exits non-zero when a target is missed. A figure
whose peer or load generator is missing is printed as SKIPPED with the reason (the Makefile
installs cfssl and wrk where it can).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.cascade import cascade_rows
from bench.figures import (
    FULL,
    SMOKE,
    Row,
    bulk_rows,
    http_rows,
    scratch_parent,
)
from bench.key_stores import key_store_rows
from bench.limits import limit_rows
from bench.servers import PROJECT_ROOT
from bench.service_figures import aws_call_rows, cold_start_rows, listing_rows
from bench.tails import aws_iot_bulk_rows, bulk_tail_rows


def versions() -> str:
    import chalice
    import cryptography
    from granian import __version__ as granian_version

    cfssl = subprocess.run(["cfssl", "version"], capture_output=True, text=True, check=False)
    peer = cfssl.stdout.splitlines()[0] if cfssl.returncode == 0 else "no cfssl"
    return (
        f"Python {platform.python_version()}, cryptography {cryptography.__version__}, "
        f"chalice {chalice.__version__}, granian {granian_version}, cfssl {peer}"
    )


def render(rows: list[Row]) -> str:
    header = ["figure", "measured", "baseline", "ratio", "target", "result"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description="every figure next to its baseline or peer")
    parser.add_argument("--smoke", action="store_true", help="every figure at a tiny size, "
                        "to check the benchmark runs; its ratios mean nothing")  # fmt: skip
    parser.add_argument("--output", type=Path, default=PROJECT_ROOT / "bench" / "RESULTS.md")
    parsed = parser.parse_args(arguments)
    scale = SMOKE if parsed.smoke else FULL
    started = time.perf_counter()
    rows: list[Row] = []
    for name, figure in (
        ("HTTP issuance vs cfssl serve", http_rows),
        ("bulk vs raw crypto", bulk_rows),
        ("platform limits", limit_rows),
        ("bulk tails", bulk_tail_rows),
        ("AWS IoT bulk", aws_iot_bulk_rows),
        ("revocation cascade", cascade_rows),
        ("listing", listing_rows),
        ("cold start", cold_start_rows),
        ("AWS calls", aws_call_rows),
        ("CA key stores", key_store_rows),
    ):
        print(f"{name}...", flush=True)
        rows += figure(scale)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    title = (
        "Benchmark smoke run (tiny sizes: the ratios mean nothing)"
        if parsed.smoke
        else ("Benchmark results")
    )
    report = (
        f"# {title}\n\n{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine}; "
        f"{versions()}; `make bench` took {time.perf_counter() - started:.0f} s.\n\n"
        f"HTTP figures: `wrk` against each server in turn, {scale.http_rounds} rounds of "
        f"{scale.http_seconds:g} s per load, the ratio of the medians; stores that sync to disk "
        f"(ours with CERTSTORE_SYNC=full, cfssl's SQLite database) on the project's disk, the "
        f"others on {scratch_parent()}. Bulk: the median of {scale.bulk_rounds} rounds, each "
        f"next to a round of raw crypto.\n\n{render(rows)}\n"
    )
    print(report)
    parsed.output.write_text(report)
    missed = [row.figure for row in rows if row.met is False]
    skipped = [row.figure for row in rows if row.value.startswith("SKIPPED")]
    if skipped:
        print("SKIPPED (not measured): " + "; ".join(skipped), file=sys.stderr)
    if missed:
        print("MISSED: " + "; ".join(missed), file=sys.stderr)
        return 0 if parsed.smoke else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

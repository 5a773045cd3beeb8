"""`make fsck` (chalicelib.fsck) on a local store: the named temporary files that interrupted
writes leave behind are reported, then removed by --repair; certificates stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from chalicelib import fsck
from tests.helpers import ApiClient


def test_reports_then_removes_named_temp_files_and_keeps_certificates(
    api: ApiClient, certstore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.post("/certificates/root", {"fqdn": "example.com"})
    orphans = [certstore / "certificates" / ".tmp-0123456789ab-0", certstore / ".tmp-probe-1"]
    an_hour_ago = time.time() - 3600
    for orphan in orphans:
        orphan.write_text('{"fqdn": "half-writ')
        os.utime(orphan, (an_hour_ago, an_hour_ago))
    in_progress = certstore / "certificates" / ".tmp-0123456789ab-1"  # a write going on now
    in_progress.write_text('{"fqdn": "being wri')

    assert fsck.main([]) == 1
    report = capsys.readouterr().out
    assert [line for line in report.splitlines() if line.startswith("orphan")] == [
        f"orphan temporary file: {orphan}" for orphan in sorted(orphans)
    ]

    assert str(in_progress) not in report

    assert fsck.main(["--repair"]) == 0
    capsys.readouterr()
    assert not any(orphan.exists() for orphan in orphans)
    assert in_progress.exists()
    assert fsck.main([]) == 0
    assert capsys.readouterr().out.strip() == "fsck: clean"
    assert api.get("/certificates/example.com").status_code == 200

"""`make fsck` (chalicelib.fsck) on a local store: the named temporary files that interrupted
writes leave behind are reported, then removed by --repair; certificates stay."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib import fsck
from tests.helpers import ApiClient


def test_reports_then_removes_named_temp_files_and_keeps_certificates(
    api: ApiClient, certstore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.post("/certificates/root", {"fqdn": "example.com"})
    orphans = [certstore / "certificates" / ".tmp-0123456789ab-0", certstore / ".tmp-probe-1"]
    for orphan in orphans:
        orphan.write_text('{"fqdn": "half-writ')

    assert fsck.main([]) == 1
    report = capsys.readouterr().out
    assert [line for line in report.splitlines() if line.startswith("orphan")] == [
        f"orphan temporary file: {orphan}" for orphan in sorted(orphans)
    ]

    assert fsck.main(["--repair"]) == 0
    capsys.readouterr()
    assert not any(orphan.exists() for orphan in orphans)
    assert fsck.main([]) == 0
    assert capsys.readouterr().out.strip() == "fsck: clean"
    assert api.get("/certificates/example.com").status_code == 200

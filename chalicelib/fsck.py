"""`python -m chalicelib.fsck [--repair]`: integrity check of the local backend's data.

After a crash (kill -9, power loss) the local store can hold temporary files of writes that never
completed, and certificates whose inventory item was not yet written. Neither is visible through
the API: temporary files are never read, and the certificate itself is complete. This reports them
and, with --repair, deletes the temporary files and adds the missing inventory items.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from chalicelib import wiring
from chalicelib.adapters.local.store import TEMP_PREFIX
from chalicelib.config import LOCAL_BACKEND, load_settings

LEFTOVER_AGE_SECONDS = 60
"""A named temporary file younger than this may be a write in progress (of a running server on
a file system without O_TMPFILE): it is neither reported nor removed."""


def temporary_files(root: Path, older_than: float = LEFTOVER_AGE_SECONDS) -> list[Path]:
    """Named temporary files of interrupted writes: untouched for `older_than` seconds."""
    cutoff = time.time() - older_than
    return sorted(
        path
        for directory, _, names in os.walk(root)
        for name in names
        if name.startswith(TEMP_PREFIX)
        and (path := Path(directory) / name).stat().st_mtime < cutoff
    )


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true", help="delete orphans, add missing items")
    options = parser.parse_args(arguments)
    settings = load_settings()
    if settings.backend != LOCAL_BACKEND:
        print("fsck checks the local backend; on AWS use `make reconcile`", file=sys.stderr)
        return 2
    orphans = temporary_files(settings.certstore_dir)
    for orphan in orphans:
        print(f"orphan temporary file: {orphan}")
        if options.repair:
            orphan.unlink()
    service = wiring.certificate_service()
    missing = service.missing_inventory_items()
    for fqdn in missing:
        print(f"certificate without an up-to-date inventory item: {fqdn}")
    if options.repair:
        service.reconcile_inventory()
    problems = len(orphans) + len(missing)
    verdict = "repaired" if options.repair else "found"
    print(f"fsck: {problems} problem(s) {verdict}" if problems else "fsck: clean")
    return 0 if options.repair or not problems else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

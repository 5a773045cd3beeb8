"""Process facts from Linux's /proc, for the benchmarks and end-to-end tests."""

from __future__ import annotations

from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The children of `pid`, gathered over its threads (one may end while they are read)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def peak_resident_kb(pid: int) -> int | None:
    """VmHWM of `pid`, or None when it is gone or the kernel does not say."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None

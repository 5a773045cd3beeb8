"""Process facts from Linux's /proc, for the benchmarks and end-to-end tests."""

from __future__ import annotations

from pathlib import Path


def child_pids(pid: int) -> list[int]:
    """The children of `pid`, gathered over its threads (one may end while they are read); none
    once `pid` is gone."""
    found = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return []
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def _status_kb(pid: int, field: str) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def peak_resident_kb(pid: int) -> int | None:
    """VmHWM of `pid`, or None when it is gone or the kernel does not say."""
    return _status_kb(pid, "VmHWM")


def descendants(pid: int) -> list[int]:
    """`pid`'s children, their children, and so on."""
    found, pending = [], child_pids(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending += child_pids(child)
    return found


def resident_kb_of_tree(pids: list[int]) -> int:
    """The resident memory (VmRSS) of `pids` and all their descendants, in kB."""
    total = 0
    for pid in pids:
        for member in (pid, *descendants(pid)):
            total += _status_kb(member, "VmRSS") or 0
    return total


def command_line(pid: int) -> list[bytes]:
    """The arguments of `pid`; none once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return []


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat after the command name (which may hold spaces): state first."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_ticks(pid: int) -> int:
    """User plus system CPU time of `pid`, in clock ticks."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12])


def is_gone(pid: int) -> bool:
    """`pid` has exited (absent, or a zombie nobody has reaped yet)."""
    try:
        return _stat_fields(pid)[0] == "Z"
    except FileNotFoundError:
        return True

"""Benchmark figures: each measures a rate (operations per second) of one path of the service."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib import pki
from chalicelib.model import CertType, IssueRequest, KeyType, SubjectDetails
from devtools.procfs import child_pids, peak_resident_kb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROOT_FQDN = "bench.example"
DEVICE_PARENT = "cell.bench.example"


def rate(operation: Callable[[], object], count: int, warmup: int = 10) -> float:
    """Operations per second over `count` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        operation()
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


def timed_window(operation: Callable[[], object], seconds: float, warmup: int) -> tuple[int, float]:
    """Calls of `operation` in a window of at least `seconds` after `warmup` untimed ones, and
    the window's exact length.

    Windows of one length give every path the same exposure to the machine's noise; a fixed
    count would give a slow path a longer window, and so a smaller chance of a quiet one.
    """
    for _ in range(warmup):
        operation()
    clock = time.perf_counter
    started = clock()
    deadline = started + seconds
    count = 0
    while True:
        operation()
        count += 1
        now = clock()
        if now >= deadline:
            return count, now - started


class RawIssuer:
    """The bare pipeline of one device certificate with a CA already loaded: no service code."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        key = pki.generate_private_key(KeyType.EC_P256)
        validity = pki.Validity(now - timedelta(minutes=5), now + timedelta(days=30))
        subject = pki.build_subject(ROOT_FQDN, SubjectDetails())
        root = pki.sign_certificate(
            pki.root_profile(), subject, key.public_key(), validity, None, key
        )
        self.authority = pki.SigningAuthority(root, key)
        self.validity = pki.Validity(now - timedelta(minutes=5), now + timedelta(days=1))

    def issue(self, key_type: KeyType) -> bytes:
        key = pki.generate_private_key(key_type)
        certificate = pki.sign_certificate(
            pki.device_profile(key_type, "device.bench.example"),
            pki.build_subject("device", SubjectDetails()),
            key.public_key(),
            self.validity,
            self.authority,
        )
        return (pki.certificate_to_pem(certificate) + pki.private_key_to_pem(key)).encode()


def durable_write(directory: Path, data: bytes, index: int) -> None:
    """The physical limit of a durable local write: write, fsync, rename."""
    temp = directory / f"{index}.tmp"
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temp, directory / f"{index}.json")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class RunningServer:
    port: int
    pid: int


@contextmanager
def local_server(
    certstore: Path, launcher: Sequence[str] = (), **settings: str
) -> Iterator[RunningServer]:
    """`chalice local --stage local` exactly as `make run` starts it, on a free port; `settings`
    are extra environment variables (`SIGNING_HELPER="off"`). `launcher` replaces the `chalice`
    command, given the same arguments (`python -m bench.server_timers`)."""
    port = free_port()
    command = list(launcher) or [str(Path(sys.executable).parent / "chalice")]
    environment = dict(os.environ, CERTSTORE_DIR=str(certstore), BACKEND="local", **settings)
    process = subprocess.Popen(
        [*command, "local", "--stage", "local", "--host", "127.0.0.1", "--port", str(port),
         "--no-autoreload"],
        cwd=PROJECT_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("chalice local did not start") from None
                time.sleep(0.1)
        yield RunningServer(port, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=10)


def peak_memory_mb(pid: int) -> float | None:
    """The peak resident memory of `pid` plus that of its children (the signing helper): an
    upper bound of what the server's processes held at once."""
    own = peak_resident_kb(pid)
    if own is None:
        return None
    return (own + sum(peak_resident_kb(child) or 0 for child in child_pids(pid))) / 1024


class KeepAliveClient:
    """A minimal HTTP/1.1 keep-alive client, as load generators (`wrk`, `ab -k`) are: it sends a
    request and reads the whole response (status, headers, Content-Length body), nothing more.

    Figure 3 measures the server's HTTP path; a full client library costs more CPU per call than
    the server spends issuing the certificate, so with it the figure would measure the client.
    """

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port))
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def post(self, path: str, body: bytes, expect_status: int = 201) -> bytes:
        self._socket.sendall(
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (path.encode(), len(body), body)
        )
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._receive_chunk()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        status = int(status_line.split()[1])
        length = next(
            int(line.split(b":", 1)[1]) for line in header_lines
            if line.lower().startswith(b"content-length:")
        )  # fmt: skip
        received = bytearray(rest)
        while len(received) < length:
            received += self._receive_chunk()
        payload, self._buffer = bytes(received[:length]), bytes(received[length:])
        if status != expect_status:
            raise RuntimeError(f"POST {path}: {status} {payload[:200]!r}")
        return payload

    def _receive_chunk(self) -> bytes:
        chunk = self._socket.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self._socket.close()


def file_create_micros(directory: Path, files: int = 100) -> float:
    """Microseconds to create, write (2.5 KB) and close one new file: the disk's state now."""
    directory.mkdir(exist_ok=True)
    start = len(os.listdir(directory))
    started = time.perf_counter()
    for index in range(start, start + files):
        descriptor = os.open(directory / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(descriptor, b"x" * 2500)
        os.close(descriptor)
    return (time.perf_counter() - started) / files * 1e6


def settle_disk(directory: Path, quiet_micros: float = 50, timeout: float = 90) -> str:
    """Wait until creating a file is cheap again (twice in a row), at most `timeout` seconds.

    After many files are deleted (a test run, a previous benchmark, a `pip install`), ext4
    without a journal keeps their inodes from reuse for 60 s, or 300 s while their inode-table
    block is not yet written back, and each new file's inode search steps over every one of
    them: file creation can cost ten or more times its usual time. Writing everything back first
    (`sync`) shortens that window to its 60 s. Returns a summary for the report.
    """
    if hasattr(os, "sync"):
        os.sync()
    first = last = file_create_micros(directory)
    quiet = 1 if last <= quiet_micros else 0
    started = time.monotonic()
    while quiet < 2 and time.monotonic() - started < timeout:
        time.sleep(1)
        last = file_create_micros(directory)
        quiet = quiet + 1 if last <= quiet_micros else 0
    waited = time.monotonic() - started
    return (
        f"creating a file took {first:.0f} us at the start and {last:.0f} us after {waited:.0f} s"
        + ("" if last <= quiet_micros else f" (still above {quiet_micros:.0f} us: disk-bound)")
    )


def seed_device_ca(client: KeepAliveClient) -> None:
    """The root and the device CA every issuance figure signs under."""
    client.post("/certificates/root", json.dumps({"fqdn": ROOT_FQDN}).encode())
    client.post("/certificates/intermediate", json.dumps({"fqdn": DEVICE_PARENT}).encode())


def create_device_ca(service: Any) -> None:
    """The same CA in process, through the service layer."""
    service.create_root(IssueRequest(CertType.ROOT, fqdn=ROOT_FQDN))
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=DEVICE_PARENT))


def post_json(connection: http.client.HTTPConnection, path: str, body: object) -> dict:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 201:
        raise RuntimeError(f"POST {path}: {response.status} {payload[:200]!r}")
    return json.loads(payload)


_scratch_root: Path | None = None


@contextmanager
def scratch_root() -> Iterator[Path]:
    """One directory for the whole run, removed when the run ends.

    It lies in the system temp directory (`BENCH_DIR` overrides): workspace directories may be
    watched by file-sync or indexing agents that slow every file creation, which would measure
    the agent rather than the service. Figures do not delete their files as they go, so one
    figure's clean-up is never billed to the next.
    """
    global _scratch_root
    parent = os.environ.get("BENCH_DIR") or None
    with tempfile.TemporaryDirectory(prefix="iot-cert-bench-", dir=parent) as root:
        _scratch_root = Path(root)
        try:
            yield _scratch_root
        finally:
            _scratch_root = None


@contextmanager
def scratch_directory() -> Iterator[str]:
    """A fresh directory under the run's scratch root (kept until the run ends)."""
    if _scratch_root is None:
        raise RuntimeError("scratch_directory() is used inside scratch_root()")
    yield tempfile.mkdtemp(dir=_scratch_root)

"""Benchmark figures: each measures a rate (operations per second) of one path of the service."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chalicelib import pki
from chalicelib.model import KeyType, SubjectDetails

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEVICE_PARENT = "cell.bench.example"


def rate(operation: Callable[[], object], count: int, warmup: int = 10) -> float:
    """Operations per second over `count` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        operation()
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


class RawIssuer:
    """The bare pipeline of one device certificate with a CA already loaded: no service code."""

    def __init__(self) -> None:
        now = datetime.now(UTC)
        key = pki.generate_private_key(KeyType.EC_P256)
        validity = pki.Validity(now - timedelta(minutes=5), now + timedelta(days=30))
        subject = pki.build_subject("bench.example", SubjectDetails())
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
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def local_server(certstore: Path) -> Iterator[int]:
    """`chalice local --stage local` exactly as `make run` starts it, on a free port."""
    port = free_port()
    chalice = Path(sys.executable).parent / "chalice"
    environment = dict(os.environ, CERTSTORE_DIR=str(certstore), BACKEND="local")
    process = subprocess.Popen(
        [str(chalice), "local", "--stage", "local", "--host", "127.0.0.1", "--port", str(port),
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
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def server_pid(port: int) -> int | None:
    """The pid listening on `port` (for its peak memory), from /proc; None where unavailable."""
    try:
        output = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return None
    marker = "pid="
    if marker not in output:
        return None
    return int(output.split(marker, 1)[1].split(",", 1)[0])


def peak_memory_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def post_json(connection: http.client.HTTPConnection, path: str, body: object) -> dict:
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 201:
        raise RuntimeError(f"POST {path}: {response.status} {payload[:200]!r}")
    return json.loads(payload)


def scratch_directory() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="iot-cert-bench-", dir=PROJECT_ROOT / "bench")

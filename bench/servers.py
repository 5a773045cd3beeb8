"""The servers `make bench` loads: ours as `make run` starts it, and `cfssl serve` as the peer;
and `wrk`, the load generator both are measured with."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.ports import free_port, wait_for_port
from devtools.procfs import descendants, peak_resident_kb

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROOT_FQDN = "bench.example"
DEVICE_PARENT = "cell.bench.example"
DEVICE_BODY = json.dumps({"parent_fqdn": DEVICE_PARENT})
CFSSL_BODY = json.dumps(
    {"request": {"CN": "device", "hosts": ["device.cell.bench.example"],
                 "key": {"algo": "ecdsa", "size": 256}}}
)  # fmt: skip
"""The same work for both: a P-256 key made by the server, a client certificate signed."""


@dataclass(frozen=True)
class Endpoint:
    """Where a load generator sends its POSTs, and what it sends."""

    url: str
    body: str
    pid: int

    def peak_memory_mb(self) -> float:
        """The sum of the peak resident memory of every process of the server: an upper bound
        of what they held at once."""
        processes = [self.pid, *descendants(self.pid)]
        return sum(peak_resident_kb(pid) or 0 for pid in processes) / 1024


def post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@contextmanager
def our_server(certstore: Path, **environment: str) -> Iterator[Endpoint]:
    """`make run`'s server (`python -m chalicelib.server`) on a free port, with a device CA."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "chalicelib.server", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=dict(os.environ, CERTSTORE_DIR=str(certstore), BACKEND="local", **environment),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_port(port, process)
        base = f"http://127.0.0.1:{port}"
        post(f"{base}/certificates/root", {"fqdn": ROOT_FQDN})
        post(f"{base}/certificates/intermediate", {"fqdn": DEVICE_PARENT})
        yield Endpoint(f"{base}/certificates/device", DEVICE_BODY, process.pid)
    finally:
        process.send_signal(2)  # SIGINT, as Ctrl-C
        process.wait(timeout=30)


CFSSL_MISSING = "cfssl is not installed (apt-get install golang-cfssl)"


CERTDB_SCHEMA = """
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier)
    REFERENCES certificates(serial_number, authority_key_identifier)
);
"""
"""cfssl's certificate database for SQLite, as its first certdb migration creates it (the
version Debian packages reads no later column). cfssl writes a row per certificate it signs,
in SQLite's default rollback-journal mode with synchronous=FULL: each one synced to disk."""


def certificates_in(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("SELECT count(*) FROM certificates").fetchone()[0])


@contextmanager
def cfssl_server(work: Path, database: bool = False) -> Iterator[Endpoint]:
    """`cfssl serve` with a P-256 CA of its own in `work`, signing client certificates
    (`/newcert`); with `database`, storing each in its SQLite certificate database there."""
    cfssl, cfssljson = shutil.which("cfssl"), shutil.which("cfssljson")
    if cfssl is None or cfssljson is None:
        raise FileNotFoundError(CFSSL_MISSING)
    work.mkdir(parents=True)
    request = {"CN": ROOT_FQDN, "key": {"algo": "ecdsa", "size": 256}}
    (work / "ca.json").write_text(json.dumps(request))
    made = subprocess.run([cfssl, "gencert", "-initca", "ca.json"], cwd=work,
                          capture_output=True, check=True)  # fmt: skip
    subprocess.run([cfssljson, "-bare", "ca"], cwd=work, input=made.stdout, check=True)
    signing = {"expiry": "8760h", "usages": ["digital signature", "client auth"]}
    (work / "config.json").write_text(json.dumps({"signing": {"default": signing}}))
    options = []
    if database:
        with contextlib.closing(sqlite3.connect(work / "certs.db")) as connection:
            connection.executescript(CERTDB_SCHEMA)
        (work / "db.json").write_text(json.dumps({"driver": "sqlite3", "data_source": "certs.db"}))
        options = ["-db-config", "db.json"]
    port = free_port()
    process = subprocess.Popen(
        [cfssl, "serve", "-address", "127.0.0.1", "-port", str(port), "-ca", "ca.pem",
         "-ca-key", "ca-key.pem", "-config", "config.json", "-loglevel", "5", *options],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port, process)
        url = f"http://127.0.0.1:{port}/api/v1/cfssl/newcert"
        yield Endpoint(url, CFSSL_BODY, process.pid)
        if database and certificates_in(work / "certs.db") == 0:
            raise RuntimeError("cfssl stored no certificate in its database")
    finally:
        process.terminate()
        process.wait(timeout=30)


WRK_MISSING = "wrk is not installed (apt-get install wrk)"


@dataclass(frozen=True)
class Load:
    """A load pattern: how many connections, and whether each request opens its own."""

    name: str
    connections: int
    new_connection_per_request: bool = False


def wrk(endpoint: Endpoint, load: Load, seconds: float) -> float:
    """Requests per second `wrk` achieved against `endpoint`; RuntimeError if any request got
    an error status (a rate of refusals would be no figure at all)."""
    binary = shutil.which("wrk")
    if binary is None:
        raise FileNotFoundError(WRK_MISSING)
    script = f"wrk.method = 'POST'\nwrk.body = '{endpoint.body}'\n"
    script += "wrk.headers['Content-Type'] = 'application/json'\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        command = [binary, "-t", str(min(2, load.connections)), "-c", str(load.connections),
                   "-d", f"{seconds:g}s", "-s", lua.name]  # fmt: skip
        if load.new_connection_per_request:
            command += ["-H", "Connection: close"]
        output = subprocess.run(
            [*command, endpoint.url], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(lua.name)
    errors = re.search(r"Socket errors: connect (\d+), read \d+, write \d+, timeout (\d+)", output)
    if "Non-2xx" in output or (errors and (int(errors.group(1)) or int(errors.group(2)))):
        raise RuntimeError(f"wrk saw failed requests against {endpoint.url}:\n{output}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if found is None:
        raise RuntimeError(f"no rate in wrk's output:\n{output}")
    return float(found.group(1))

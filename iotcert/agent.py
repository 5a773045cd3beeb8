"""`iotcert agent FQDN DIR`: keeps a device's or broker's files current, renewing before expiry.

`DIR` holds `cert.pem`, `chain.pem`, `fullchain.pem`, `key.pem` and `ca.pem` (as `iotcert files`
writes them), each a symbolic link into `DIR/.live`, itself a link to the generation in use,
`DIR/.generations/<serial>/`. A renewal writes the new generation's files completely, then
swaps `.live` with one rename: a reader (a broker reloading) sees the old set or the new one,
never a certificate with another's key, even when the agent is killed half-way.

On its first check the agent writes the certificate's current files; it renews once `--renew-at`
of the lifetime (from `not_before` to `not_after`) has passed, a little earlier at random (up to
JITTER of the lifetime) so that a fleet does not renew all at once, and never twice within
MIN_RENEWAL_INTERVAL. A renewal names the generation it renews (`serial`): if another renewed it
first, the agent takes that one. After each renewal it runs `--exec` (e.g. `systemctl reload
mosquitto`). Errors are retried with a doubling, capped, randomised wait; SIGTERM and SIGINT end
it cleanly between steps. `--once` makes one check, for cron. `--key-on-device` makes each new key
here and sends only a CSR, so the key never leaves the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shlex
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from iotcert.client import ApiClient, ApiError, CliError, certificate_path
from iotcert.commands import stored_private_key
from iotcert.files import write_certificate_files

LINKED = ("cert.pem", "chain.pem", "fullchain.pem", "key.pem", "ca.pem")
LIVE = ".live"
GENERATIONS = ".generations"
JITTER = 0.05
"""Up to this share of the lifetime earlier than `--renew-at`, at random."""
MIN_RENEWAL_INTERVAL = timedelta(minutes=1)
MAX_WAIT_SECONDS = 3600.0
"""The longest sleep between checks: a renewal made elsewhere is noticed within it."""
RETRY_SECONDS = (1.0, 300.0)
"""The first and the longest wait after an error (doubling, randomised)."""
EXEC_TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class Installed:
    serial: str
    not_before: datetime
    not_after: datetime


class Agent:
    def __init__(
        self,
        client: ApiClient,
        fqdn: str,
        directory: Path,
        renew_at: float = 2 / 3,
        command: str | None = None,
        key_on_device: bool = False,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        jitter: float | None = None,
    ) -> None:
        self._client = client
        self._fqdn = fqdn
        self._directory = directory
        self._renew_at = renew_at
        self._command = command
        self._key_on_device = key_on_device
        self._say = say
        self._now = now
        self._jitter = random.uniform(0, JITTER) if jitter is None else jitter  # noqa: S311 (spread, not secrecy)
        self._renewed_at: datetime | None = None

    def check(self) -> datetime:
        """Install the current files if there are none, renew if due; when to check again."""
        installed = self.installed()
        if installed is None:
            installed = self._install(self._client.get(certificate_path(self._fqdn)), key=None)
        due = self.due(installed)
        now = self._now()
        recently = self._renewed_at and now - self._renewed_at < MIN_RENEWAL_INTERVAL
        if now < due or recently:
            return max(due, (self._renewed_at or now) + MIN_RENEWAL_INTERVAL)
        installed = self._renew(installed)
        return self.due(installed)

    def due(self, installed: Installed) -> datetime:
        lifetime = installed.not_after - installed.not_before
        return installed.not_before + lifetime * max(0.0, self._renew_at - self._jitter)

    def installed(self) -> Installed | None:
        """The generation `DIR/.live` points to, or None before the first install."""
        live = self._directory / LIVE
        if not live.is_symlink():
            return None
        from cryptography import x509

        try:
            certificate = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
        except (OSError, ValueError):
            return None
        return Installed(
            format(certificate.serial_number, "x"),
            certificate.not_valid_before_utc,
            certificate.not_valid_after_utc,
        )

    def _renew(self, installed: Installed) -> Installed:
        body: dict[str, Any] = {"serial": installed.serial}
        key = None
        if self._key_on_device:
            key, body["csr"] = _new_key_and_csr(self._directory / LIVE / "cert.pem")
        try:
            renewed = self._client.post(certificate_path(self._fqdn, "renew"), body)
        except ApiError as err:
            if err.status != 409:
                raise
            self._say(f"agent: {self._fqdn} was renewed elsewhere; taking the current generation")
            renewed, key = self._client.get(certificate_path(self._fqdn)), None
        current = self._install(renewed, key)
        self._say(f"agent: renewed {self._fqdn}: serial {installed.serial} -> {current.serial}")
        self._renewed_at = self._now()
        self._run_command()
        return current

    def _install(self, certificate: dict[str, Any], key: str | None) -> Installed:
        """The certificate's files as a new generation, then `.live` swapped to it at once."""
        serial = certificate["serial"]
        if key is None and "private_key" in certificate:
            key = certificate["private_key"]
        if key is None:
            key = self._stored_key(serial)
        generations = self._directory / GENERATIONS
        generation = generations / serial
        shutil.rmtree(generation, ignore_errors=True)  # a half-written one from before
        generations.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._directory, 0o700)
        write_certificate_files(generation, certificate["certificate"], certificate["chain"], key)
        _fsync_directory(generation)
        self._swap_live(Path(GENERATIONS) / serial)
        for name in LINKED:
            _link(self._directory / name, Path(LIVE) / name)
        self._remove_old_generations(keep=serial)
        self._say(f"agent: {self._directory}/ holds {self._fqdn} serial {serial}")
        installed = self.installed()
        assert installed is not None
        return installed

    def _stored_key(self, serial: str) -> str | None:
        """The service's copy of the key (None when it was made from a CSR: then the device's
        own key is kept, from the generation in use)."""
        stored = stored_private_key(self._client, self._fqdn, serial)
        if stored is not None:
            return stored
        current = self._directory / LIVE / "key.pem"
        return current.read_text() if current.exists() else None

    def _swap_live(self, target: Path) -> None:
        temporary = self._directory / f"{LIVE}.new"
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(target)
        os.replace(temporary, self._directory / LIVE)  # the one step that switches every file
        _fsync_directory(self._directory)

    def _remove_old_generations(self, keep: str) -> None:
        """All but the generation in use and the one before it (a reader may still hold it)."""
        generations = sorted(
            (path for path in (self._directory / GENERATIONS).iterdir() if path.name != keep),
            key=lambda path: path.stat().st_mtime,
        )
        for old in generations[:-1]:
            shutil.rmtree(old, ignore_errors=True)

    def _run_command(self) -> None:
        if not self._command:
            return
        try:
            finished = subprocess.run(  # noqa: S603 (the user's own command, without a shell)
                shlex.split(self._command), timeout=EXEC_TIMEOUT_SECONDS, check=False
            )
            self._say(f"agent: ran {self._command} (exit status {finished.returncode})")
        except (OSError, subprocess.TimeoutExpired) as err:
            self._say(f"agent: {self._command} failed: {err}")


def _new_key_and_csr(current: Path) -> tuple[str, str]:
    """A key of the current certificate's kind, made here, and a CSR for it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    public = x509.load_pem_x509_certificate(current.read_bytes()).public_key()
    key: Any
    if isinstance(public, ec.EllipticCurvePublicKey):
        key = ec.generate_private_key(public.curve)
    elif isinstance(public, rsa.RSAPublicKey):
        key = rsa.generate_private_key(public_exponent=65537, key_size=public.key_size)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, algorithm)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, csr.public_bytes(serialization.Encoding.PEM).decode()


def _link(path: Path, target: Path) -> None:
    """`path` a symbolic link to `target`, put in place with one rename (a regular file that
    `iotcert files` wrote is replaced the same way)."""
    if path.is_symlink() and Path(os.readlink(path)) == target:
        return
    temporary = path.with_name(f".{path.name}.link")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    temporary.symlink_to(target)
    os.replace(temporary, path)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def run(client: ApiClient, args: argparse.Namespace) -> None:
    """The `agent` command."""
    agent = Agent(client, args.fqdn, Path(args.directory), args.renew_at, args.exec,
                  args.key_on_device)  # fmt: skip
    if args.once:
        agent.check()
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    failed = 0
    while not stop.is_set():
        try:
            next_check = agent.check()
            failed = 0
            wait = (next_check - datetime.now(UTC)).total_seconds()
        except (CliError, OSError) as err:
            failed += 1
            first, longest = RETRY_SECONDS
            wait = min(longest, first * 2 ** (failed - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
            print(f"agent: {err}; trying again in {wait:.0f} s", flush=True)
        stop.wait(min(max(wait, 1.0), MAX_WAIT_SECONDS))
    print("agent: stopped", flush=True)

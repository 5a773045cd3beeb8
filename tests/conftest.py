"""Fixtures: an isolated store per test, the Chalice test client, a real local server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.config import load_settings
from devtools.aws_resources import AWS_ENVIRONMENT
from devtools.ports import free_port, wait_for_port
from devtools.procfs import child_pids
from tests.backends import Backend, LocalBackend, MotoBackend, moto_account
from tests.helpers import ApiClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`moto` on every test on the AWS backend (`backend` is "aws") or on AWS resources under
    moto (`aws_resources`); the contract suites mark their AWS adapters with `adapter_params`."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_aws = callspec is not None and callspec.params.get("backend") == "aws"
        if on_aws or "aws_resources" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.moto)


@pytest.fixture
def certstore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh local backend under tmp_path for this test."""
    directory = tmp_path / "certstore"
    monkeypatch.setenv("CERTSTORE_DIR", str(directory))
    monkeypatch.setenv("BACKEND", "local")
    monkeypatch.delenv("CA_KEY_PASSPHRASE", raising=False)
    wiring.reset()
    yield directory
    wiring.reset()


@pytest.fixture
def api(certstore: Path) -> Iterator[ApiClient]:
    from app import app

    with Client(app, stage_name="test") as client:
        yield ApiClient(client)


@pytest.fixture(params=["local", "aws"])
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    """Each backend in turn: the local one, and the AWS one under moto (`mock_aws`)."""
    monkeypatch.delenv("CA_KEY_PASSPHRASE", raising=False)
    if request.param == "local":
        directory = tmp_path / "certstore"
        monkeypatch.setenv("BACKEND", "local")
        monkeypatch.setenv("CERTSTORE_DIR", str(directory))
        wiring.reset()
        yield LocalBackend(directory)
        wiring.reset()
        return
    with moto_account(monkeypatch, AWS_ENVIRONMENT) as (session, resources):
        monkeypatch.setenv("KMS_KEY_ID", resources["kms_key_id"])
        # The wiring's own build, from this environment, on the run's shared session.
        wiring.override_service(wiring.build_service(load_settings(), boto_session=session))
        yield MotoBackend(session, AWS_ENVIRONMENT, resources)
        wiring.reset()


@pytest.fixture
def backend_api(backend: Backend) -> Iterator[ApiClient]:
    """The HTTP test client on each backend; on AWS, events reach the handler through SQS."""
    from app import app

    with Client(app, stage_name="test") as client:
        yield ApiClient(client, backend)


class LocalServer:
    """The `make run` server (`python -m chalicelib.server`) on a free port and its own store,
    in a process group of its own (master, workers and their signing processes)."""

    def __init__(
        self,
        certstore: Path,
        log_path: Path,
        workers: int = 2,
        public_base_url: bool = False,
        **environment: str,
    ) -> None:
        """`public_base_url`: certificates name CRLs published at this server's own URL."""
        self.certstore = certstore
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self._environment = environment
        if public_base_url:
            self._environment["PUBLIC_BASE_URL"] = self.url
        self._log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        environment = dict(
            os.environ, CERTSTORE_DIR=str(self.certstore), BACKEND="local", **self._environment
        )
        command = [sys.executable, "-m", "chalicelib.server", "--port", str(self.port),
                   "--workers", str(self.workers)]  # fmt: skip
        with open(self._log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=environment, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        """SIGKILL to every process of the server at once, as a crash or `kill -9 -<pgid>`."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGINT, gunicorn's quick shutdown (as Ctrl-C): idle keep-alive connections are not
        waited for."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process is not None:  # workers and signing processes left behind, if any
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def worker_pids(self) -> list[int]:
        assert self.process is not None
        return child_pids(self.process.pid)

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exception: object) -> None:
        self.stop()


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(tmp_path / "server-certstore", tmp_path / "server.log") as server:
        yield server

"""`make run-moto`: the AWS backend on this machine, against a local moto server.

Starts moto on 127.0.0.1, creates the resources Terraform would (bucket, KMS key, table, custom
bus, rule), then `make run`'s server on the `dev` stage with fake credentials and
AWS_ENDPOINT_URL pointing at moto. EventBridge cannot invoke a local Lambda, so each rule targets
an SQS queue and a pump here hands each event to its handler (`record_inventory`,
`revocation_cascade`), as EventBridge would. A message the handler fails on (or that is no event
at all) is logged and kept in a dead-letter list (as the real stack's dead-letter queue keeps
it), and the pump goes on with the next.

moto's port is `--moto-port` (`make run-moto MOTO_PORT=...`, default 5000); its request log
(werkzeug's, a line per AWS call) is shown only with `--moto-log` (`MOTO_LOG=1`). A port that is
in use, moto's or the API's, ends the launcher at once with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from moto.core.config import DefaultConfig
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from chalicelib.server import port_in_use
from devtools.aws_resources import AWS_ENVIRONMENT, create_aws_resources

PROJECT_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("run_moto")

Handler = Callable[[dict[str, Any], Any], object]


class EventPump:
    """Moves a rule's events from its SQS queue to its handler, one at a time."""

    def __init__(self, sqs: Any, queue_url: str, handler: Handler) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self.dead_letters: list[dict[str, Any]] = []

    def pump_once(self, wait_seconds: int = 1) -> int:
        """Deliver what is waiting (up to ten events); how many were handled."""
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        handled = 0
        for message in response.get("Messages", []):
            letter: dict[str, Any] = {"Body": message["Body"]}
            try:
                letter = envelope = json.loads(message["Body"])
                envelope.setdefault("account", "123456789012")  # moto's target omits it
                self._handler(envelope, None)
                handled += 1
            except Exception:  # one bad message must not stop the handling of every other one
                logger.exception("handler failed on %.200s; dead-lettered", message["Body"])
                self.dead_letters.append(letter)
            self._sqs.delete_message(
                QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return handled

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.pump_once()


class MotoServer:
    """moto's server in a thread of this process, as moto's ThreadedMotoServer runs it, but bound
    here, in the caller's thread: a port in use is an error at once, not a thread that dies
    while its starter waits for it forever."""

    def __init__(self, port: int) -> None:
        app = DomainDispatcherApplication(create_backend_app)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()


MOTO_CONFIG: DefaultConfig = {"iot": {"use_valid_cert": True}}
"""AWS IoT certificate IDs computed as AWS computes them (the SHA-256 of the DER), which the
service's revocations name; moto's default hashes the PEM text instead, and every revocation
would miss its certificate. moto reads its settings from `mock_aws(config=...)`, kept active
while the server runs."""


def start_moto(port: int) -> tuple[MotoServer, dict[str, str]]:
    """moto on `port`, this process's environment pointed at it, the stack's resources made."""
    moto = MotoServer(port)
    os.environ.update(AWS_ENVIRONMENT)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    resources = create_aws_resources(boto3.session.Session(), AWS_ENVIRONMENT)
    os.environ["KMS_KEY_ID"] = resources["kms_key_id"]
    return moto, resources


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="API port")
    parser.add_argument("--moto-port", type=int, default=5000, help="moto server port")
    parser.add_argument(
        "--moto-log", action="store_true", help="show moto's request log (a line per AWS call)"
    )
    arguments = parser.parse_args()
    for name, port in (("API", arguments.port), ("moto", arguments.moto_port)):
        if port_in_use("127.0.0.1", port):
            parser.error(f"port {port} ({name}) on 127.0.0.1 is in use: choose another")
    if arguments.port == arguments.moto_port:
        parser.error(f"the API and moto cannot share port {arguments.port}")
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.INFO if arguments.moto_log else logging.WARNING)
    with mock_aws(config=MOTO_CONFIG):
        return _serve(arguments)


def _serve(arguments: argparse.Namespace) -> int:
    moto, resources = start_moto(arguments.moto_port)

    from app import record_inventory, revocation_cascade

    stop = threading.Event()
    sqs = boto3.session.Session().client("sqs")
    for queue, handler in (
        ("queue_url", record_inventory),
        ("cascade_queue_url", revocation_cascade),
    ):
        pump = EventPump(sqs, resources[queue], handler)
        threading.Thread(target=pump.run, args=(stop,), daemon=True).start()
    print(f"moto on {os.environ['AWS_ENDPOINT_URL']}; API on http://127.0.0.1:{arguments.port}")
    command = [sys.executable, "-m", "chalicelib.server", "--stage", "dev"]
    server = subprocess.Popen([*command, "--port", str(arguments.port)], cwd=PROJECT_ROOT)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children on SIGTERM too
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            server.wait()
        stop.set()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())

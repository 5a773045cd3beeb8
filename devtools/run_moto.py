"""`make run-moto`: the AWS backend on this machine, against a local moto server.

Starts moto on 127.0.0.1, creates the resources Terraform would (bucket, KMS key, table, custom
bus, rule), then `make run`'s server on the `dev` stage with fake credentials and
AWS_ENDPOINT_URL pointing at moto. EventBridge cannot invoke a local Lambda, so the rule targets
an SQS queue and a pump here hands each event to the app's `record_inventory` handler, as
EventBridge would. An event the handler fails on is logged and kept in a dead-letter list (as
the real stack's dead-letter queue keeps it), and the pump goes on with the next.
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
from moto.server import ThreadedMotoServer

from devtools.aws_resources import AWS_ENVIRONMENT, create_aws_resources

PROJECT_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("run_moto")

Handler = Callable[[dict[str, Any], Any], object]


class EventPump:
    """Moves the rule's events from the SQS queue to the inventory handler, one at a time."""

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
            envelope = json.loads(message["Body"])
            envelope.setdefault("account", "123456789012")  # moto's target template omits it
            try:
                self._handler(envelope, None)
                handled += 1
            except Exception:  # one bad event must not stop the inventory of every other one
                logger.exception("inventory handler failed on %s; dead-lettered", envelope["id"])
                self.dead_letters.append(envelope)
            self._sqs.delete_message(
                QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
        return handled

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.pump_once()


def start_moto(port: int) -> tuple[ThreadedMotoServer, dict[str, str]]:
    """moto on `port`, this process's environment pointed at it, the stack's resources made."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    os.environ.update(AWS_ENVIRONMENT)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    resources = create_aws_resources(boto3.session.Session(), AWS_ENVIRONMENT)
    os.environ["KMS_KEY_ID"] = resources["kms_key_id"]
    return moto, resources


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="API port")
    parser.add_argument("--moto-port", type=int, default=5000, help="moto server port")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    moto, resources = start_moto(arguments.moto_port)

    from app import record_inventory

    stop = threading.Event()
    sqs = boto3.session.Session().client("sqs")
    pump = EventPump(sqs, resources["queue_url"], record_inventory)
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

"""`make run-moto`: the AWS backend on this machine, against a local moto server.

Starts moto on 127.0.0.1, creates the resources Terraform would (bucket, KMS key, table, custom
bus, rule), then `chalice local --stage dev` with fake credentials and AWS_ENDPOINT_URL pointing
at moto. EventBridge cannot invoke a local Lambda, so the rule targets an SQS queue and a small
pump here hands each event to the app's `record_inventory` handler, as EventBridge would.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from devtools.aws_resources import AWS_ENVIRONMENT, create_aws_resources

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def pump_events(queue_url: str, stop: threading.Event) -> None:
    from app import record_inventory

    sqs = boto3.session.Session().client("sqs")
    while not stop.is_set():
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in response.get("Messages", []):
            envelope = json.loads(message["Body"])
            envelope.setdefault("account", "123456789012")  # moto's target template omits it
            record_inventory(envelope, None)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000, help="API port")
    parser.add_argument("--moto-port", type=int, default=5000, help="moto server port")
    arguments = parser.parse_args()

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=arguments.moto_port, verbose=False)
    moto.start()
    os.environ.update(AWS_ENVIRONMENT)
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{arguments.moto_port}"
    resources = create_aws_resources(boto3.session.Session(), AWS_ENVIRONMENT)
    os.environ["KMS_KEY_ID"] = resources["kms_key_id"]

    stop = threading.Event()
    pump = threading.Thread(target=pump_events, args=(resources["queue_url"], stop), daemon=True)
    pump.start()
    chalice = Path(sys.executable).parent / "chalice"
    print(f"moto on {os.environ['AWS_ENDPOINT_URL']}; API on http://127.0.0.1:{arguments.port}")
    server = subprocess.Popen(
        [str(chalice), "local", "--stage", "dev", "--host", "127.0.0.1",
         "--port", str(arguments.port), "--no-autoreload"],
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children on SIGTERM too
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait()
        stop.set()
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())

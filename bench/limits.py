"""`make bench`'s figures of the platform's limits: API Gateway's 29 s and Lambda's 6 MB.

Each key type's largest accepted bulk is issued in process, as the Lambda signs it, with the
longest subject a caller may ask for: the slowest one's CPU time, scaled to the function's CPU
share, is compared with its timeout, and the largest response (the Lambda proxy payload, whose
JSON body is escaped once more) with 6 MB.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from bench.figures import FULL, Row, Scale, scratch
from bench.servers import DEVICE_PARENT, PROJECT_ROOT

LAMBDA_FULL_VCPU_MB = 1769
"""Lambda's CPU share grows with memory; at 1,769 MB a function has one full vCPU."""
LAMBDA_RESPONSE_LIMIT = 6 * 1024 * 1024
JSON = {"Content-Type": "application/json"}
SUBJECT = {"organization": "O" * 64}  # the longest subject attribute a caller may set


def _lambda_settings() -> tuple[int, int]:
    """The API function's memory (MB) and timeout (s) from .chalice/config.json's dev stage."""
    stage = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
    function = stage["lambda_functions"]["api_handler"]
    return function["lambda_memory_size"], function["lambda_timeout"]


@contextlib.contextmanager
def environment(**variables: str) -> Iterator[None]:
    """These environment variables for the block, the previous ones restored after it."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def moto_account() -> Iterator[tuple[Any, str]]:
    """A fresh moto account with the stack's resources, as the figures on the AWS backend need
    it: the environment of AWS_ENVIRONMENT (what must never reach AWS cleared), stderr quiet,
    AWS IoT certificate IDs as AWS computes them. Yields the boto3 session and the KMS key ID,
    which is also in KMS_KEY_ID; everything is as before afterwards."""
    import boto3
    from moto import mock_aws

    from devtools.aws_resources import AWS_ENVIRONMENT, UNSAFE_VARIABLES, create_aws_resources

    saved = {name: os.environ.pop(name) for name in UNSAFE_VARIABLES if name in os.environ}
    try:
        with (
            open(os.devnull, "w") as devnull,
            contextlib.redirect_stderr(devnull),
            environment(**AWS_ENVIRONMENT),
            mock_aws(config={"iot": {"use_valid_cert": True}}),
        ):
            session = boto3.session.Session()
            key_id = create_aws_resources(session, AWS_ENVIRONMENT)["kms_key_id"]
            with environment(KMS_KEY_ID=key_id):
                yield session, key_id
    finally:
        os.environ.update(saved)


def counted_calls(session: Any, service: str) -> dict[str, int]:
    """The calls to `service` ("kms", "iot") that the session's clients make from now on, by
    operation (registered before the clients exist); the caller clears it between figures."""
    calls: dict[str, int] = {}

    def count_call(event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        calls[operation] = calls.get(operation, 0) + 1

    session.events.register(f"before-call.{service}", count_call)
    return calls


def _post(client: Any, path: str, body: dict[str, object]) -> Any:
    response = client.http.post(path, headers=JSON, body=json.dumps({**body, **SUBJECT}))
    if response.status_code != 201:
        raise RuntimeError(f"{path} {body}: {response.status_code} {response.body[:200]!r}")
    return response


@contextlib.contextmanager
def local_app() -> Iterator[Any]:
    """The Chalice test client on a local store in a scratch directory, signing in process as
    the Lambda does, with the device CA made: what the in-process figures issue through."""
    from chalice.test import Client

    from chalicelib import wiring

    with (
        scratch() as directory,
        open(os.devnull, "w") as devnull,
        contextlib.redirect_stderr(devnull),
        environment(CERTSTORE_DIR=str(directory), BACKEND="local", SIGNING_PROCESSES="0"),
    ):
        wiring.reset()
        from app import app

        with Client(app, stage_name="test") as client:
            _post(client, "/certificates/root", {"fqdn": "bench.example"})
            _post(client, "/certificates/intermediate", {"fqdn": DEVICE_PARENT})
            yield client
        wiring.reset()


def largest_bulks(scale: Scale = FULL) -> tuple[dict[str, float], dict[str, int]]:
    """CPU seconds and Lambda payload bytes of each key type's largest accepted bulk."""
    from chalicelib.api.fields import MAX_BULK, MAX_BULK_BY_KEY_TYPE

    cpu: dict[str, float] = {}
    sizes: dict[str, int] = {}
    with local_app() as client:
        for key_type in ("EC_P256", "EC_P384", "ED25519", *MAX_BULK_BY_KEY_TYPE):
            count = MAX_BULK_BY_KEY_TYPE.get(key_type, MAX_BULK) if scale.largest_bulks else 2
            body = {"parent_fqdn": DEVICE_PARENT, "count": count, "key_type": key_type}
            started = time.process_time()
            response = _post(client, "/certificates/device", body)
            cpu[f"{key_type} x {count}"] = time.process_time() - started
            payload = {"statusCode": 201, "body": response.body.decode()}
            sizes[f"{key_type} x {count}"] = len(json.dumps(payload))
    return cpu, sizes


def limit_rows(scale: Scale = FULL) -> list[Row]:
    memory_mb, timeout_s = _lambda_settings()
    share = memory_mb / LAMBDA_FULL_VCPU_MB
    cpu, sizes = largest_bulks(scale)
    slowest = max(cpu, key=cpu.__getitem__)
    largest = max(sizes, key=sizes.__getitem__)
    at_lambda = cpu[slowest] / share
    return [
        Row(f"slowest accepted bulk ({slowest}), in process: at {memory_mb} MB "
            f"({share:.2f} vCPU)", f"{at_lambda:.1f} s", f"{timeout_s} s timeout",
            at_lambda / timeout_s, "<= 0.50", at_lambda / timeout_s <= 0.5),
        Row(f"largest accepted bulk response ({largest})", f"{sizes[largest] / 1e6:.2f} MB",
            "6 MB Lambda limit", sizes[largest] / LAMBDA_RESPONSE_LIMIT, "<= 0.50",
            sizes[largest] / LAMBDA_RESPONSE_LIMIT <= 0.5),
    ]  # fmt: skip

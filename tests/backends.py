"""The backends the API suite runs on: the local one, and the AWS one under moto.

Each offers the same small interface to tests: a snapshot of everything stored (to prove that a
rejected request wrote nothing), the stored bytes of one certificate, and event delivery. On AWS
the `created` events travel for real: PutEvents on the custom bus, a rule with the handler's
pattern, an SQS target; `deliver_events` hands what arrived to the app's `record_inventory`
handler, as EventBridge would invoke the Lambda.

Also the AWS side of the contract suites: a fresh moto account per test, built as Terraform would
(`moto_account`, the `aws_resources` fixture of tests/fixtures.py), and `adapter_params`.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devtools.aws_resources import AWS_ENVIRONMENT, UNSAFE_VARIABLES, create_aws_resources
from tests.helpers import snapshot_certstore

INVENTORY_HANDLER = "record_inventory"
CASCADE_HANDLER = "revocation_cascade"

FAKE_CREDENTIALS = {
    name: AWS_ENVIRONMENT[name]
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    )
}
"""The fake credentials and region the contract suites' moto accounts are opened with."""

AWS_ADAPTERS = frozenset({"s3", "dynamodb", "eventbridge", "acm", "aws_iot"})
"""The contract suites' adapters whose factories pull the `aws_resources` fixture."""


def adapter_params(factories: Iterable[tuple[str, Any]]) -> list[Any]:
    """A contract fixture's params: one per adapter, its name the id; the AWS ones marked `moto`.

    Contract factories for the AWS adapters pull `aws_resources` with `request.getfixturevalue`,
    so a suite stays one list of adapters and the local adapters never start moto; the `moto`
    mark is what `make test-fast` leaves out.
    """
    return [
        pytest.param(factory, id=name, marks=[pytest.mark.moto] if name in AWS_ADAPTERS else [])
        for name, factory in factories
    ]


@dataclass(frozen=True)
class AwsResources:
    """The moto session and the names of what `create_aws_resources` made in it."""

    session: boto3.session.Session
    bucket: str
    table: str
    index: str
    bus: str
    kms_key_id: str
    queue_url: str


@functools.cache
def shared_boto_session() -> boto3.session.Session:
    """One Session for the run: each new Session parses the service models again (~0.2 s a test).

    It holds no AWS state: every test makes its own clients, and moto's state lives in `mock_aws`.
    First built inside a fixture, after the fake credentials are set, and resolves them lazily.
    """
    return boto3.session.Session()


@contextmanager
def moto_account(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> Iterator[tuple[boto3.session.Session, dict[str, str]]]:
    """A fresh moto account with the resources Terraform would create, and the run's session.

    Clears UNSAFE_VARIABLES and sets `environment` first; yields the session and what
    `create_aws_resources` returned (the KMS key id, the inventory queue URL).
    """
    for name in UNSAFE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # AWS IoT's certificate IDs are the certificates' SHA-256 (DER), which moto computes so
    # only when asked to (its default hashes the PEM text).
    with mock_aws(config={"iot": {"use_valid_cert": True}}):
        session = shared_boto_session()
        yield session, create_aws_resources(session, AWS_ENVIRONMENT)


class LocalBackend:
    name = "local"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def snapshot(self) -> dict[str, Any]:
        return snapshot_certstore(self.directory)

    def object_bytes(self, fqdn: str) -> bytes:
        return (self.directory / "certificates" / f"{fqdn}.json").read_bytes()

    def deliver_events(self, chalice_client: Any) -> int:
        return 0  # delivered in-process during the request


class MotoBackend:
    name = "aws"

    def __init__(self, session: Any, environment: dict[str, str], queues: dict[str, str]) -> None:
        self._session = session
        self._environment = environment
        self._queue_url = queues["queue_url"]
        self.cascade_queue_url = queues["cascade_queue_url"]
        self.invocations: Counter[str] = Counter()  # per handler, what deliver_events invoked
        self.s3 = session.client("s3")
        self.dynamodb = session.client("dynamodb")
        self.acm = session.client("acm")
        self.sqs = session.client("sqs")

    @property
    def bucket(self) -> str:
        return self._environment["CERTIFICATE_BUCKET_NAME"]

    def snapshot(self) -> dict[str, Any]:
        versions = self.s3.list_object_versions(Bucket=self.bucket).get("Versions", [])
        objects = {
            (version["Key"], version["VersionId"]): self.s3.get_object(
                Bucket=self.bucket, Key=version["Key"], VersionId=version["VersionId"]
            )["Body"].read()
            for version in versions
        }
        items = self.dynamodb.scan(TableName=self._environment["INVENTORY_TABLE_NAME"])["Items"]
        certificates = self.acm.list_certificates()["CertificateSummaryList"]
        return {
            "objects": objects,
            "inventory": sorted(json.dumps(item, sort_keys=True) for item in items),
            "acm": sorted(summary["CertificateArn"] for summary in certificates),
        }

    def object_bytes(self, fqdn: str, raw_key: bool = False) -> bytes:
        key = fqdn if raw_key else f"certificates/{fqdn}.json"
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def receive_events(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        """Every envelope waiting in the queue the inventory rule (or the one at `queue_url`)
        targets, removed from it."""
        queue_url = queue_url or self._queue_url
        envelopes: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return envelopes
            for message in messages:
                envelope = json.loads(message["Body"])
                # moto's default target template leaves out `account`, which EventBridge sends.
                envelope.setdefault("account", "123456789012")
                envelopes.append(envelope)
            self.sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )

    def deliver_events(self, chalice_client: Any) -> int:
        """Hand every waiting event to its handler, as EventBridge would invoke the functions,
        until none is left (a cascade may hand on the rest of its walk); the inventory's
        events, how many."""
        delivered = 0
        while True:
            inventory = self.receive_events()
            for envelope in inventory:
                chalice_client.lambda_.invoke(INVENTORY_HANDLER, envelope)
            cascade = self.receive_events(self.cascade_queue_url)
            for envelope in cascade:
                chalice_client.lambda_.invoke(CASCADE_HANDLER, envelope)
            self.invocations.update(
                {INVENTORY_HANDLER: len(inventory), CASCADE_HANDLER: len(cascade)}
            )
            delivered += len(inventory)
            if not inventory and not cascade:
                return delivered


Backend = LocalBackend | MotoBackend
"""Either backend the API suite runs on."""

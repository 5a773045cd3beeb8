"""The AWS side of the contract suites: a fresh moto account per test, built as Terraform would.

Contract factories for the AWS adapters pull `aws_resources` with `request.getfixturevalue`, so
the suites stay one list of adapters and the local adapters never start moto. `adapter_params`
marks the AWS adapters' params `moto`, which `make test-fast` leaves out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from devtools.aws_resources import AWS_ENVIRONMENT
from tests.backends import moto_account

FAKE_CREDENTIALS = {
    name: AWS_ENVIRONMENT[name]
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    )
}


AWS_ADAPTERS = frozenset({"s3", "dynamodb", "eventbridge", "acm", "aws_iot"})
"""The adapters whose factories pull `aws_resources`."""


def adapter_params(factories: Iterable[tuple[str, Any]]) -> list[Any]:
    """A contract fixture's params: one per adapter, its name the id; the AWS ones marked `moto`."""
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


@pytest.fixture
def aws_resources(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AwsResources]:
    """Bucket, KMS key, table with its index, bus, rule and SQS target in a fresh moto account."""
    assert request.node.get_closest_marker("moto"), f"{request.node.nodeid}: not marked moto"
    with moto_account(monkeypatch, FAKE_CREDENTIALS) as (session, created):
        yield AwsResources(
            session=session,
            bucket=AWS_ENVIRONMENT["CERTIFICATE_BUCKET_NAME"],
            table=AWS_ENVIRONMENT["INVENTORY_TABLE_NAME"],
            index=AWS_ENVIRONMENT["INVENTORY_INDEX_NAME"],
            bus=AWS_ENVIRONMENT["EVENT_BUS_NAME"],
            kms_key_id=created["kms_key_id"],
            queue_url=created["queue_url"],
        )

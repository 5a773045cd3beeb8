"""AWS resources for development and tests: what Terraform creates, made on moto.

Used by the test suite (under `mock_aws`) and by `make run-moto` (a local moto server).
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.events import CASCADE_EVENT_PATTERN, INVENTORY_EVENT_PATTERN

AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "BACKEND": "aws",
    "CERTIFICATE_BUCKET_NAME": "iot-certificates-test",
    "INVENTORY_TABLE_NAME": "iot-inventory-test",
    "INVENTORY_INDEX_NAME": "parent-index",
    "INVENTORY_EXPIRY_INDEX_NAME": "expiry-index",
    "EVENT_BUS_NAME": "iot-certificates-test",
    "IOT_DEVICE_POLICY_NAME": "iot-certificates-test-devices",
    "IOT_PROVISIONING_ROLE_ARN": (
        "arn:aws:iam::123456789012:role/iot-certificates-test-provisioning"
    ),
    "CA_SIGNER_ROLE_ARN": "arn:aws:iam::123456789012:role/iot-certificates-test-api",
}
UNSAFE_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_REGION", "KMS_KEY_ID")
"""Variables that would point a moto run at a real account or a stale key: cleared first."""
INVENTORY_RULE_NAME = "record-inventory"
_THING = "${iot:Connection.Thing.ThingName}"
IOT_DEVICE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": "iot:Connect",
            "Resource": f"arn:aws:iot:*:*:client/{_THING}",
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": f"arn:aws:iot:*:*:topic/devices/{_THING}/*",
        },
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": f"arn:aws:iot:*:*:topicfilter/devices/{_THING}/*",
        },
    ],
}
"""terraform/iot.tf's device policy: connect as its own thing, topics under devices/<thing>/."""
INVENTORY_QUEUE_NAME = "inventory-events"
CASCADE_RULE_NAME = "revocation-cascade"
CASCADE_QUEUE_NAME = "cascade-events"
EVENT_ROUTES = (
    (INVENTORY_RULE_NAME, INVENTORY_EVENT_PATTERN, INVENTORY_QUEUE_NAME, "queue_url"),
    (CASCADE_RULE_NAME, CASCADE_EVENT_PATTERN, CASCADE_QUEUE_NAME, "cascade_queue_url"),
)
"""Each event handler's rule, as the stack has it, with an SQS queue for its target (EventBridge
cannot invoke a local function): the queue's URL is returned under the last name."""


def create_aws_resources(session: Any, environment: dict[str, str]) -> dict[str, str]:
    """Bucket, KMS key, table with its GSI, custom bus, each handler's rule (an SQS target
    each), and the AWS IoT device policy, as Terraform would."""
    s3 = session.client("s3")
    bucket = environment["CERTIFICATE_BUCKET_NAME"]
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    kms_key_id = session.client("kms").create_key(Description="certificate store")["KeyMetadata"][
        "KeyId"
    ]
    session.client("dynamodb").create_table(
        TableName=environment["INVENTORY_TABLE_NAME"],
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "FQDN", "AttributeType": "S"},
            {"AttributeName": "ParentFQDN", "AttributeType": "S"},
            {"AttributeName": "Expiring", "AttributeType": "S"},
            {"AttributeName": "NotAfter", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "FQDN", "KeyType": "HASH"},
            {"AttributeName": "ParentFQDN", "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": environment["INVENTORY_INDEX_NAME"],
                "KeySchema": [
                    {"AttributeName": "ParentFQDN", "KeyType": "HASH"},
                    {"AttributeName": "FQDN", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": environment["INVENTORY_EXPIRY_INDEX_NAME"],
                "KeySchema": [
                    {"AttributeName": "Expiring", "KeyType": "HASH"},
                    {"AttributeName": "NotAfter", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
    )
    events = session.client("events")
    bus = environment["EVENT_BUS_NAME"]
    events.create_event_bus(Name=bus)
    sqs = session.client("sqs")
    created = {"kms_key_id": kms_key_id}
    for rule, pattern, queue, returned_as in EVENT_ROUTES:
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
        queue_url = sqs.create_queue(QueueName=queue)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}])
        created[returned_as] = queue_url
    session.client("iot").create_policy(
        policyName=environment["IOT_DEVICE_POLICY_NAME"],
        policyDocument=json.dumps(IOT_DEVICE_POLICY),
    )
    return created

"""Each function's role allows exactly what its code calls, on every path: every AWS call the
API, inventory and cascade functions make in these scenarios (issuance of every kind, renewals,
revocations, CRLs, bundles, AWS IoT onboarding; events in order, replayed and out of order; a
CA revocation walked down to AWS IoT over several invocations; a revoked subtree deleted, with
its KMS keys and AWS IoT registrations) is allowed by a statement of its
role in terraform/iam.tf (action, resource as IAM matches it, and the statement's conditions on
the call's tags and passed role), and every action a role grants is called by some path.

The policies are read from terraform/iam.tf (python-hcl2), their references resolved to the
names of the moto account the scenarios run in. Not modelled: the Lambda runtime's own calls
(CloudWatch Logs, the asynchronous dead-letter queue), and what KMS does for DynamoDB (the key's
policy grants it: tests/e2e/test_terraform_stages.py); S3's use of the key is, as the caller's
kms:GenerateDataKey (a write) and kms:Decrypt (a read).
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import hcl2
import pytest
from chalice.test import Client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chalicelib import wiring
from chalicelib.config import load_settings
from chalicelib.model import CertType, IssueRequest
from devtools.aws_resources import AWS_ENVIRONMENT
from tests.backends import CASCADE_HANDLER, INVENTORY_HANDLER, MotoBackend
from tests.helpers import ApiClient

pytestmark = pytest.mark.slow
IAM_TF = Path(__file__).resolve().parents[2] / "terraform" / "iam.tf"
ACCOUNT, REGION = "123456789012", AWS_ENVIRONMENT["AWS_DEFAULT_REGION"]
EXPIRY_SCAN = "scan_expiring"
POLICY_OF = {
    "api_handler": ("api",), INVENTORY_HANDLER: ("inventory",), CASCADE_HANDLER: ("cascade",),
    EXPIRY_SCAN: ("expiry", "expiry_purge"),  # the second with purge_expired_after_days only
}  # fmt: skip
"""Each function's role's policy documents."""
RUNTIME_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"}
"""What the Lambda runtime calls for a function, not its code."""
ROOT, DEVICES, CELL = "example.com", "devices.example.com", "cell1.devices.example.com"
RACED = "raced.example.org"
SOON_CELL = "soon.example.com"


# The policies, as terraform/iam.tf writes them ---------------------------------------------


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) > 1 and text[0] == text[-1] == '"' else text


def references(kms_key_arn: str) -> dict[str, str]:
    bucket = f"arn:aws:s3:::{AWS_ENVIRONMENT['CERTIFICATE_BUCKET_NAME']}"
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{AWS_ENVIRONMENT['INVENTORY_TABLE_NAME']}"
    return {
        "aws_s3_bucket.certificates.arn": bucket,
        "aws_dynamodb_table.inventory.arn": table,
        "local.inventory_index": AWS_ENVIRONMENT["INVENTORY_INDEX_NAME"],
        "local.expiry_index": AWS_ENVIRONMENT["INVENTORY_EXPIRY_INDEX_NAME"],
        "aws_cloudwatch_event_bus.certificates.arn": (
            f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{AWS_ENVIRONMENT['EVENT_BUS_NAME']}"
        ),
        "aws_kms_key.certificates.arn": kms_key_arn,
        "local.iot_arn_prefix": f"arn:aws:iot:{REGION}:{ACCOUNT}",
        "local.kms_arn_prefix": f"arn:aws:kms:{REGION}:{ACCOUNT}",
        "aws_iam_role.iot_provisioning.arn": AWS_ENVIRONMENT["IOT_PROVISIONING_ROLE_ARN"],
        "aws_sqs_queue.inventory_dead_letters.arn": "dead-letter-queue",
        "data.aws_partition.current.partition": "aws",
        "var.region": REGION,
        "data.aws_caller_identity.current.account_id": ACCOUNT,
        # what the functions' SERVICE_APP and SERVICE_STAGE hold (devtools/chalice_tf.py)
        "var.app_name": load_settings().ownership.app,
        "var.stage": load_settings().ownership.stage,
    }


def _resolve(text: str, known: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("aws_cloudwatch_log_group.functions"):
            return "log-group"
        return known[name]

    return re.sub(r"\$\{([^}]+)\}", one, _unquote(text))


@dataclass(frozen=True)
class Context:
    """What a request's conditions read: the tags it carries, whom it passes a role to, the
    tags of the resource it acts on, and the usage of a KMS key it creates."""

    tags: tuple[tuple[str, str], ...] = ()
    passed_to: str | None = None
    resource_tags: tuple[tuple[str, str], ...] = ()
    key_usage: str | None = None


@dataclass(frozen=True)
class Condition:
    test: str
    variable: str
    values: frozenset[str]

    def holds(self, context: Context) -> bool:
        """As IAM evaluates the conditions the policies use; any other is not modelled."""
        tags = dict(context.tags)
        if self.variable.startswith("aws:RequestTag/") and self.test in (
            "StringEquals", "StringEqualsIfExists",
        ):  # fmt: skip
            value = tags.get(self.variable.removeprefix("aws:RequestTag/"))
            return self.test.endswith("IfExists") if value is None else value in self.values
        if (self.test, self.variable) == ("ForAllValues:StringEquals", "aws:TagKeys"):
            return set(tags) <= self.values
        if (self.test, self.variable) == ("StringEquals", "iam:PassedToService"):
            return context.passed_to in self.values
        if self.variable.startswith("aws:ResourceTag/") and self.test == "StringEquals":
            return dict(context.resource_tags).get(self.variable.split("/", 1)[1]) in self.values
        if (self.test, self.variable) == ("StringEquals", "kms:KeyUsage"):
            return context.key_usage in self.values
        raise AssertionError(f"a condition this test does not model: {self}")


@dataclass(frozen=True)
class Statement:
    actions: frozenset[str]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()


def role_statements(kms_key_arn: str) -> dict[str, list[Statement]]:
    """Function name -> the statements of its role's policy document."""
    with IAM_TF.open() as file:
        parsed = hcl2.load(file)
    documents: dict[str, list[Statement]] = {}
    known = references(kms_key_arn)
    for block in parsed["data"]:
        for kind, named in block.items():
            if _unquote(kind) != "aws_iam_policy_document":
                continue
            for name, body in named.items():
                if not any(_unquote(name) in names for names in POLICY_OF.values()):
                    continue  # a trust policy, or another stack's role
                documents[_unquote(name)] = [
                    Statement(
                        frozenset(_unquote(action) for action in statement["actions"]),
                        tuple(_resolve(resource, known) for resource in statement["resources"]),
                        tuple(
                            Condition(
                                _unquote(condition["test"]),
                                _unquote(condition["variable"]),
                                frozenset(_resolve(value, known) for value in condition["values"]),
                            )
                            for condition in statement.get("condition", [])
                        ),
                    )
                    for statement in body.get("statement", [])
                ]
    return {
        function: [statement for name in names for statement in documents[name]]
        for function, names in POLICY_OF.items()
    }


def allowed(
    statements: list[Statement], action: str, resource: str, context: Context = Context()
) -> bool:
    return any(
        action in statement.actions
        and any(fnmatch.fnmatchcase(resource, pattern) for pattern in statement.resources)
        and all(condition.holds(context) for condition in statement.conditions)
        for statement in statements
    )


# What the code calls ------------------------------------------------------------------------


@dataclass
class Calls:
    """(IAM action, resource ARN, what its conditions read) of every AWS call a function made,
    on the function's own boto3 session."""

    made: set[tuple[str, str, Context]] = field(default_factory=set)
    after_alias: list[Any] = field(default_factory=list)  # run once each, after a CreateAlias


def request_context(service: str, operation: str, params: dict[str, Any]) -> Context:
    """The tags a call carries (RegisterCACertificate's, ImportCertificate's, CreateKey's), AWS
    IoT as the service a registration's provisioning role is passed to, and for a call on a KMS
    key, the key's tags as moto holds them."""
    tags = params.get("tags") if service == "iot" else params.get("Tags")
    passed_to = "iot.amazonaws.com" if operation == "RegisterCACertificate" else None
    pairs = tuple((tag.get("Key", tag.get("TagKey")), tag.get("Value", tag.get("TagValue")))
                  for tag in tags or [])  # fmt: skip
    resource_tags: tuple[tuple[str, str], ...] = ()
    key_id = params.get("KeyId", params.get("TargetKeyId"))
    if service == "kms" and key_id:
        listed = boto3.client("kms").list_resource_tags(KeyId=key_id)["Tags"]
        resource_tags = tuple((tag["TagKey"], tag["TagValue"]) for tag in listed)
    return Context(pairs, passed_to, resource_tags, params.get("KeyUsage"))


def iam_requests(service: str, operation: str, params: dict[str, Any], kms_key: str) -> list[
    tuple[str, str]
]:  # fmt: skip
    """The IAM actions and resources one API call needs."""
    bucket = f"arn:aws:s3:::{params.get('Bucket')}"
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params.get('TableName')}"
    iot = f"arn:aws:iot:{REGION}:{ACCOUNT}"
    if service == "s3":
        if operation == "ListObjectsV2":
            return [("s3:ListBucket", bucket)]
        if operation == "PutObject":
            return [("s3:PutObject", f"{bucket}/{params['Key']}"),
                    ("kms:GenerateDataKey", kms_key)]  # fmt: skip
        if operation in ("GetObject", "HeadObject"):
            return [("s3:GetObject", f"{bucket}/{params['Key']}"), ("kms:Decrypt", kms_key)]
        if operation == "DeleteObject":
            return [("s3:DeleteObject", f"{bucket}/{params['Key']}")]
    if service == "dynamodb":
        if operation == "Query" and "IndexName" in params:
            return [("dynamodb:Query", f"{table}/index/{params['IndexName']}")]
        return [(f"dynamodb:{operation}", table)]
    if service == "events":
        bus = params["Entries"][0]["EventBusName"]
        return [("events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{bus}")]
    if service == "acm":
        arn = params.get("CertificateArn", f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/new")
        if operation == "ListCertificates":
            return [("acm:ListCertificates", "*")]
        tags = [("acm:AddTagsToCertificate", arn)] if params.get("Tags") else []
        return [(f"acm:{operation}", arn), *tags]
    if service == "iot":
        if operation in ("UpdateCertificate", "DescribeCertificate", "DeleteCertificate"):
            return [(f"iot:{operation}", f"{iot}:cert/{params['certificateId']}")]
        if operation in ("UpdateCACertificate", "DeleteCACertificate"):
            return [(f"iot:{operation}", f"{iot}:cacert/{params['certificateId']}")]
        if operation in ("AttachPolicy", "DetachPolicy"):
            return [(f"iot:{operation}", params["target"])]
        if operation in ("DetachThingPrincipal", "DescribeThing", "DeleteThing"):
            return [(f"iot:{operation}", f"{iot}:thing/{params['thingName']}")]
        if operation == "CreateThing":
            return [("iot:CreateThing", f"{iot}:thing/{params['thingName']}")]
        passed = []
        if operation == "RegisterCACertificate" and "registrationConfig" in params:
            passed = [("iam:PassRole", params["registrationConfig"]["roleArn"])]
        if operation == "RegisterCACertificate" and params.get("tags"):  # tagged at creation
            passed.append(("iot:TagResource", f"{iot}:cacert/new"))
        return [(f"iot:{operation}", "*"), *passed]
    if service == "kms":
        kms = f"arn:aws:kms:{REGION}:{ACCOUNT}"
        if operation == "CreateKey":  # tagged at creation
            return [("kms:CreateKey", "*"), ("kms:TagResource", f"{kms}:key/new")]
        if operation == "CreateAlias":
            key = boto3.client("kms").describe_key(KeyId=params["TargetKeyId"])["KeyMetadata"]
            return [("kms:CreateAlias", f"{kms}:{params['AliasName']}"),
                    ("kms:CreateAlias", key["Arn"])]  # fmt: skip
        if operation in ("Sign", "GetPublicKey", "ScheduleKeyDeletion"):
            key = boto3.client("kms").describe_key(KeyId=params["KeyId"])["KeyMetadata"]
            return [(f"kms:{operation}", key["Arn"])]
    raise AssertionError(f"a call no role is modelled for: {service}.{operation}")


@pytest.fixture
def functions(backend: MotoBackend) -> Iterator[dict[str, tuple[Any, Calls]]]:
    """For each function, a service on a boto3 session that records every call it makes."""
    kms_key = boto3.client("kms").describe_key(KeyId=load_settings().kms_key_id)["KeyMetadata"]
    made: dict[str, tuple[Any, Calls]] = {}
    for function in POLICY_OF:
        calls = Calls()
        session = boto3.session.Session()

        def record(model: Any, params: dict[str, Any], calls: Calls = calls, **_: Any) -> None:
            service = model.service_model.endpoint_prefix
            context = request_context(service, model.name, params)
            for action, resource in iam_requests(service, model.name, params, kms_key["Arn"]):
                calls.made.add((action, resource, context))

        def after_alias(calls: Calls = calls, **_: Any) -> None:
            while calls.after_alias:
                calls.after_alias.pop()()

        session.events.register("provide-client-params.*.*", record)
        session.events.register("after-call.kms.CreateAlias", after_alias)
        made[function] = (wiring.build_service(load_settings(), boto_session=session), calls)
    yield made
    wiring.reset()


@contextlib.contextmanager
def as_function(functions: dict[str, tuple[Any, Calls]], name: str) -> Iterator[None]:
    wiring.override_service(functions[name][0])
    try:
        yield
    finally:
        wiring.reset()


def csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")])
    request = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def deliver(backend: MotoBackend, client: Any, functions: dict[str, tuple[Any, Calls]]) -> None:
    """Every waiting event to its handler, each handler as its own function; a replay too."""
    while True:
        inventory = backend.receive_events()
        with as_function(functions, INVENTORY_HANDLER):
            for envelope in inventory + inventory:  # EventBridge may deliver twice
                client.lambda_.invoke(INVENTORY_HANDLER, envelope)
        cascade = backend.receive_events(backend.cascade_queue_url)
        with as_function(functions, CASCADE_HANDLER):
            for envelope in cascade:
                client.lambda_.invoke(CASCADE_HANDLER, envelope)
        if not inventory and not cascade:
            return


@pytest.mark.parametrize("backend", ["aws"], indirect=True)
def test_each_role_allows_exactly_what_its_function_calls(
    backend: MotoBackend, functions: dict[str, tuple[Any, Calls]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app import app

    with Client(app, stage_name="test") as client:
        api = ApiClient(client)

        def call(method: str, path: str, body: Any = None) -> Any:
            with as_function(functions, "api_handler"):
                if method == "GET":
                    return api.get(path)
                if method == "DELETE":
                    return api.delete(path)
                return api.post(path, body or {})

        def created(kind: str, **body: Any) -> dict[str, Any]:
            response = call("POST", f"/certificates/{kind}", body)
            assert response.status_code == 201, response.body
            return dict(response.body)

        created("root", fqdn=ROOT)
        # A CA whose name a racing request takes between the making of its KMS key and its
        # write: 409, and its key scheduled for deletion.
        rival = wiring.build_service(load_settings())
        functions["api_handler"][1].after_alias.append(
            lambda: rival.create_root(IssueRequest(CertType.ROOT, fqdn=RACED, key_store="file"))
        )
        assert call("POST", "/certificates/root", {"fqdn": RACED}).status_code == 409
        kms = boto3.client("kms")
        raced = [key["KeyId"] for key in kms.list_keys()["Keys"]
                 if {"TagKey": "ca", "TagValue": RACED} in kms.list_resource_tags(
                     KeyId=key["KeyId"])["Tags"]]  # fmt: skip
        assert len(raced) == 1
        assert kms.describe_key(KeyId=raced[0])["KeyMetadata"]["KeyState"] == "PendingDeletion"
        created("intermediate", fqdn=DEVICES, path_length=1)
        created("intermediate", fqdn=CELL)
        server = created("server", fqdn="mqtt.example.com")
        renewed_early = call("POST", "/certificates/mqtt.example.com/renew")  # ARN found in ACM
        assert renewed_early.status_code == 201
        deliver(backend, client, functions)
        assert call("GET", "/certificates/mqtt.example.com").body["acm_certificate_arn"]
        assert call("POST", "/certificates/mqtt.example.com/renew").status_code == 201
        register = {"mode": "DEFAULT", "provisioning": "jitp"}
        assert call("POST", f"/certificates/{CELL}/aws-iot/register", register).status_code == 200
        code = {"registration_code": "0" * 64}
        verification = call("POST", f"/certificates/{CELL}/aws-iot/verification-certificate", code)
        assert verification.status_code == 200
        iot_device = created("device", parent_fqdn=CELL, aws_iot={"register": True, "thing": True})
        alone = {"register": True, "thing": False}  # no thing; revoked with DEVICES
        created("device", parent_fqdn=CELL, aws_iot=alone)
        device = created("device", parent_fqdn=CELL, csr=csr())
        bulk = created("device", parent_fqdn=CELL, count=3)
        renewed = call(
            "POST", f"/certificates/{device['fqdn']}/renew", {"csr": csr(), "revoke_previous": True}
        )
        assert renewed.status_code == 201
        deliver(backend, client, functions)
        out_of_order = call("POST", f"/certificates/{bulk['items'][0]['fqdn']}/renew")
        assert out_of_order.status_code == 201
        for envelope in backend.receive_events():  # a `renewed` whose item is not there yet
            envelope["detail"]["FQDN"] = "not-there-yet." + CELL
            with as_function(functions, INVENTORY_HANDLER), pytest.raises(Exception):
                client.lambda_.invoke(INVENTORY_HANDLER, envelope)
        for path in (
            f"/certificates?parent={CELL}&status=active&expiring_within_days=3650",
            f"/certificates/{device['fqdn']}/history",
            f"/certificates/{server['fqdn']}/private-key",
            f"/certificates/{server['fqdn']}/bundle?format=fullchain",
        ):
            assert call("GET", path).status_code == 200, path
        assert call("POST", f"/certificates/{iot_device['fqdn']}/revoke").status_code == 200
        deliver(backend, client, functions)  # the device REVOKED in AWS IoT
        assert call("POST", f"/certificates/{DEVICES}/revoke").status_code == 200
        deliver(backend, client, functions)  # the walk down to AWS IoT, in several invocations
        assert call("GET", f"/certificates/{CELL}/crl").status_code == 200  # lists all it issued
        # a device revoked through its CA gets a revocation of its own, then goes
        assert call("DELETE", f"/certificates/{bulk['items'][1]['fqdn']}").status_code == 200
        # the revoked subtree: documents, items (tombstones), KMS keys, then AWS IoT
        assert call("DELETE", f"/certificates/{DEVICES}?cascade=true").status_code == 200
        deliver(backend, client, functions)  # the removal from AWS IoT, things included
        assert boto3.client("iot").list_things()["things"] == []
        created("intermediate", fqdn=SOON_CELL)
        created("device", parent_fqdn=SOON_CELL, validity_days=10)
        expired = created("device", parent_fqdn=SOON_CELL, validity_days=1)
        assert call("GET", "/certificates/expiring?within_days=30").status_code == 200
        deliver(backend, client, functions)
        # with purge_expired_after_days=1, three days on: the expired device is purged
        monkeypatch.setenv("PURGE_EXPIRED_AFTER_DAYS", "1")
        scan = functions[EXPIRY_SCAN][0]
        scan.clock = lambda: datetime.now(UTC) + timedelta(days=3, hours=1)
        with as_function(functions, EXPIRY_SCAN):  # daily, as EventBridge's schedule invokes it
            scheduled = client.events.generate_cw_event(
                source="aws.events", detail_type="Scheduled Event", detail={},
                resources=[f"arn:aws:events:{REGION}:{ACCOUNT}:rule/scan_expiring-event"],
            )  # fmt: skip
            client.lambda_.invoke(EXPIRY_SCAN, scheduled)
        assert call("GET", f"/certificates/{expired['fqdn']}").status_code == 404

    kms_key = boto3.client("kms").describe_key(KeyId=load_settings().kms_key_id)["KeyMetadata"]
    statements = role_statements(kms_key["Arn"])
    for function, (_, calls) in functions.items():
        refused = sorted(request for request in calls.made if not allowed(statements[function],
                                                                          *request))  # fmt: skip
        assert refused == [], f"{function}'s role refuses {refused}"
        granted = {action for statement in statements[function] for action in statement.actions}
        unused = granted - RUNTIME_ACTIONS - {action for action, _, _ in calls.made}
        assert unused == set(), f"{function}'s role grants what it never calls: {sorted(unused)}"

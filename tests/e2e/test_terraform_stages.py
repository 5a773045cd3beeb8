"""Two stages, alice and bob, applied side by side into one moto account, then alice torn down.

Applied, not planned: every resource is created by Terraform on a local moto server (each stage
in its own workspace, so its own state), listed back through boto3, and checked to belong to its
stage only. Then alice's destroy is refused while it is planned, by the teardown lock (nothing
changes, the state and its outputs included), and, the lock lifted without the allowing apply, by
the teardown guard (nothing changes); the documented teardown (apply with `allow_teardown=true`,
lift the lock, destroy) removes alice and leaves bob whole. The tests share one apply of both
stages and run in file order, teardown last.

What moto cannot do, and how this test handles it, without changing the real stack:
- moto's API Gateway import refuses Swagger 2.0 ("Only OpenAPI 3.x.x are currently supported"),
  and Chalice generates Swagger 2.0. A test-only override file gives the REST API the same routes,
  integrations, SigV4 scheme and binary media types as an OpenAPI 3.0 document; everything else
  about the API (name, endpoint type, deployment, stage, invoke permission) is the real one.
- moto stores neither a function's dead-letter target (GetFunction omits DeadLetterConfig) nor
  the API's binary media types (its PATCH leaves empty strings), so neither can be read back:
  both are checked in the configuration instead (the plan test in test_terraform.py and
  tests/unit/test_chalice_tf.py).
- moto does not invoke a Lambda target of a rule, so no event flows here; the rule, its target,
  the retry policy and the dead-letter queue are created and read back.
- moto's server speaks plain HTTP and enforces the bucket's TLS-only policy, so no object can be
  stored (the refusal is asserted): the guard is shown on an empty bucket, which it refuses to
  destroy all the same.
- moto's AWS IoT has no tags (Terraform's `aws_iot_policy` reads them) and no ListCACertificates:
  tests/moto_iot.py adds them to the moto server, which runs in this process. Each stage then
  registers a cell CA and a device with its thing, as its API function does (the service with
  the stage's AWS IoT settings, its documents kept in memory), so alice's destroy meets what
  stopped it before: a device policy attached to certificates.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.aws.iot import AwsIotRegistry
from chalicelib.adapters.local.importer import NullImporter
from chalicelib.iot_onboarding import IotCaRequest
from chalicelib.model import AwsIotOptions, CertType, IssueRequest
from chalicelib.ownership import Ownership
from chalicelib.service import CertificateService
from devtools import teardown_iot
from tests.fakes import InMemoryInventory, InMemoryStore, RecordingPublisher
from tests.moto_iot import with_ca_tags_and_listing
from tests.terraform import (
    API_GATEWAY_TIMEOUT_SECONDS,
    REGION,
    TERRAFORM,
    Module,
    packaged_module,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed"),
]
STAGES = ("alice", "bob")
APP = "iot-cert-service"
ALLOW_TEARDOWN = "-var=allow_teardown=true"
ON_MOTO: tuple[str, ...] = ()
"""Variables the stack needs on moto: none, the device policy included, now that the moto server
has AWS IoT's tags (the `module` fixture)."""

# Resource types with a name, and the attribute that holds it; the others are listed in UNNAMED,
# so a new resource type makes this test fail until it is classified.
NAMED = {
    "aws_api_gateway_rest_api": "name",
    "aws_cloudwatch_event_bus": "name",
    "aws_cloudwatch_event_rule": "name",
    "aws_cloudwatch_log_group": "name",
    "aws_cloudwatch_metric_alarm": "alarm_name",
    "aws_dynamodb_table": "name",
    "aws_iam_role": "name",
    "aws_iam_role_policy": "name",
    "aws_iot_policy": "name",
    "aws_kms_alias": "name",
    "aws_lambda_function": "function_name",
    "aws_s3_bucket": "bucket",
    "aws_sqs_queue": "name",
}
UNNAMED = {
    "aws_api_gateway_deployment",
    "aws_iam_role_policy_attachment",
    "aws_api_gateway_stage",
    "aws_cloudwatch_event_target",
    "aws_kms_key",
    "aws_lambda_permission",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_ownership_controls",
    "aws_s3_bucket_policy",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_versioning",
    "terraform_data",
}


def openapi3_override(generated: dict[str, Any]) -> dict[str, Any]:
    """The generated Swagger 2.0 routes as OpenAPI 3.0, for moto's import (see module doc)."""
    swagger = json.loads(generated["locals"]["chalice_api_swagger"])
    paths: dict[str, dict[str, Any]] = {}
    for path, operations in swagger["paths"].items():
        for method, operation in operations.items():
            converted = {
                key: value
                for key, value in operation.items()
                if key in ("security", "x-amazon-apigateway-integration")
            }
            converted["responses"] = {"200": {"description": "200 response"}}
            converted["parameters"] = [
                {key: value for key, value in parameter.items() if key != "type"}
                | {"schema": {"type": parameter["type"]}}
                for parameter in operation.get("parameters", [])
            ]
            paths.setdefault(path, {})[method] = converted
    document = {
        "openapi": "3.0.1",
        "info": swagger["info"],
        "paths": paths,
        "components": {"securitySchemes": swagger["securityDefinitions"]},
        "x-amazon-apigateway-binary-media-types": swagger["x-amazon-apigateway-binary-media-types"],
    }
    return {"resource": {"aws_api_gateway_rest_api": {"rest_api": {"body": json.dumps(document)}}}}


class Account:
    """boto3 clients on the moto server, and what the account holds, by resource type."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        self.client: Callable[[str], Any] = lambda name: session.client(name, endpoint_url=endpoint)

    def names(self) -> dict[str, set[str]]:
        roles = [role["RoleName"] for role in self.client("iam").list_roles()["Roles"]]
        events = self.client("events")
        buses = [bus["Name"] for bus in events.list_event_buses()["EventBuses"]]
        return {
            "aws_api_gateway_rest_api": {
                api["name"] for api in self.client("apigateway").get_rest_apis()["items"]
            },
            "aws_cloudwatch_event_bus": set(buses) - {"default"},
            "aws_cloudwatch_event_rule": {
                rule["Name"]
                for bus in buses
                for rule in events.list_rules(EventBusName=bus)["Rules"]
            },
            "aws_cloudwatch_log_group": {
                group["logGroupName"]
                for group in self.client("logs").describe_log_groups()["logGroups"]
            },
            "aws_cloudwatch_metric_alarm": {
                alarm["AlarmName"]
                for alarm in self.client("cloudwatch").describe_alarms()["MetricAlarms"]
            },
            "aws_dynamodb_table": set(self.client("dynamodb").list_tables()["TableNames"]),
            "aws_iam_role": set(roles),
            "aws_iam_role_policy": {
                name
                for role in roles
                for name in self.client("iam").list_role_policies(RoleName=role)["PolicyNames"]
            },
            "aws_iot_policy": {
                policy["policyName"] for policy in self.client("iot").list_policies()["policies"]
            },
            "aws_kms_alias": {
                alias["AliasName"] for alias in self.client("kms").list_aliases()["Aliases"]
            },
            "aws_lambda_function": {
                function["FunctionName"]
                for function in self.client("lambda").list_functions()["Functions"]
            },
            "aws_s3_bucket": {
                bucket["Name"] for bucket in self.client("s3").list_buckets()["Buckets"]
            },
            "aws_sqs_queue": {
                url.rsplit("/", 1)[-1]
                for url in self.client("sqs").list_queues().get("QueueUrls", [])
            },
        }

    def key_state(self, key_id: str) -> str:
        return str(self.client("kms").describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


class Stack:
    """One stage's resources as its Terraform state records them."""

    def __init__(self, state: dict[str, Any]) -> None:
        recorded = state.get("values", {}).get("root_module", {}).get("resources", [])
        self.resources = {
            resource["address"]: resource for resource in recorded if resource["mode"] == "managed"
        }

    def types(self) -> set[str]:
        return {resource["type"] for resource in self.resources.values()}

    def names(self) -> dict[str, set[str]]:
        names: dict[str, set[str]] = {kind: set() for kind in NAMED}
        for resource in self.resources.values():
            if resource["type"] in NAMED:
                names[resource["type"]].add(resource["values"][NAMED[resource["type"]]])
        return names

    def values(self, address: str) -> dict[str, Any]:
        return dict(self.resources[address]["values"])


def _all(names: dict[str, set[str]]) -> set[str]:
    return {name for group in names.values() for name in group}


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[Module]:
    """One package (`make package STAGE=alice`) and one directory; a workspace per stage; moto's
    AWS IoT with tags (tests/moto_iot.py)."""
    packaged = packaged_module(tmp_path_factory.mktemp("stages"), "alice")
    packaged.point_at(moto_endpoint)
    override = openapi3_override(packaged.generated())
    (packaged.directory / "moto_api_override.tf.json").write_text(json.dumps(override))
    for stage in STAGES:
        created = packaged.terraform("workspace", "new", stage)
        assert created.returncode == 0, created.stderr
    with pytest.MonkeyPatch.context() as patch:
        with_ca_tags_and_listing(patch)
        yield packaged


def apply(module: Module, *stages: str, extra: tuple[str, ...] = ()) -> None:
    """`terraform apply -var stage=<stage>` in each stage's workspace, the stages in parallel
    (each read by its own thread: a stage whose output nobody reads would stop at a full pipe
    and wait for the other)."""
    with ThreadPoolExecutor(max_workers=len(stages)) as pool:
        running = {stage: pool.submit(_apply, module, stage, extra) for stage in stages}
    for stage, future in running.items():
        completed = future.result()
        assert completed.returncode == 0, f"{stage}: {completed.stdout}"


def _apply(module: Module, stage: str, extra: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TERRAFORM), "apply", "-auto-approve", "-input=false", "-no-color",
         f"-var=region={REGION}", f"-var=stage={stage}", *ON_MOTO, *extra],
        cwd=module.directory, env=_environment(stage), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=600, check=False,
    )  # fmt: skip


def _environment(stage: str) -> dict[str, str]:
    return dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_WORKSPACE=stage)


def destroy(module: Module, stage: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return module.terraform(
        "destroy", "-auto-approve", "-input=false", "-no-color", f"-var=region={REGION}",
        f"-var=stage={stage}", *ON_MOTO, *extra, workspace=stage,
    )  # fmt: skip


def terraform_outputs(module: Module, stage: str) -> dict[str, Any]:
    """`terraform output -json`: each output's value."""
    shown = module.terraform("output", "-json", workspace=stage)
    assert shown.returncode == 0, shown.stderr
    return {name: output["value"] for name, output in json.loads(shown.stdout).items()}


def lift_the_lock(module: Module, stage: str) -> None:
    """`terraform state rm terraform_data.teardown_lock`, the teardown's second step."""
    removed = module.terraform("state", "rm", "terraform_data.teardown_lock", workspace=stage)
    assert removed.returncode == 0, removed.stdout + removed.stderr


def stack(module: Module, stage: str) -> Stack:
    shown = module.terraform("show", "-json", workspace=stage)
    assert shown.returncode == 0, shown.stderr
    return Stack(json.loads(shown.stdout))


@pytest.fixture(scope="module")
def stacks(module: Module) -> Iterator[dict[str, Stack]]:
    apply(module, *STAGES)
    yield {stage: stack(module, stage) for stage in STAGES}


def test_each_stage_names_only_its_own_resources(
    stacks: dict[str, Stack], moto_endpoint: str
) -> None:
    in_account = Account(moto_endpoint).names()
    for stage, resources in stacks.items():
        assert resources.types() <= set(NAMED) | UNNAMED, resources.types() - UNNAMED
        names = resources.names()
        assert all(names.values()), names  # at least one of each named type
        assert len(names["aws_lambda_function"]) == 4 and len(names["aws_iam_role"]) == 5
        for kind, group in names.items():
            assert group <= in_account[kind], (kind, group - in_account[kind])
        prefix = f"{APP}-{stage}"
        for name in _all(names):
            assert re.search(rf"(^|/){re.escape(prefix)}($|-)", name), name
    alice, bob = (_all(stacks[stage].names()) for stage in STAGES)
    assert not alice & bob
    assert not [name for name in _all(in_account) if re.search(r"-dev($|-)", name)]


def test_a_stage_cannot_be_applied_in_another_stage_s_workspace(module: Module) -> None:
    planned = module.terraform(
        "plan", "-input=false", "-no-color", "-var=stage=bob", workspace="alice"
    )
    output = " ".join((planned.stdout + planned.stderr).split())
    assert planned.returncode != 0
    assert 'is not the selected workspace "alice"' in output


def test_the_functions_fit_api_gateway_and_dead_letter_their_events(
    stacks: dict[str, Stack], moto_endpoint: str
) -> None:
    account = Account(moto_endpoint)
    for stage, resources in stacks.items():
        api = account.client("lambda").get_function_configuration(FunctionName=f"{APP}-{stage}")
        assert 0 < api["Timeout"] <= API_GATEWAY_TIMEOUT_SECONDS
        queue = resources.values("aws_sqs_queue.inventory_dead_letters")
        handlers = {}
        for key, role in (("record_inventory", "inventory"), ("revocation_cascade", "cascade")):
            handler = handlers[key] = resources.values(f"aws_lambda_function.{key}")
            assert handler["role"].endswith(f":role/{APP}-{stage}-{role}")
            [target] = account.client("events").list_targets_by_rule(
                Rule=f"{APP}-{stage}-{key}", EventBusName=f"{APP}-{stage}"
            )["Targets"]
            assert target["Arn"] == handler["arn"]
            assert target["DeadLetterConfig"] == {"Arn": queue["arn"]}
            assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        attributes = account.client("sqs").get_queue_attributes(
            QueueUrl=queue["url"], AttributeNames=["All"]
        )["Attributes"]
        assert attributes["SqsManagedSseEnabled"] == "true"
        [statement] = json.loads(attributes["Policy"])["Statement"]
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        sources = statement["Condition"]["ArnLike"]["aws:SourceArn"]
        assert sorted(source.rsplit(":", 1)[1] for source in sources) == [
            f"rule/{APP}-{stage}-scan_expiring", f"rule/{APP}-{stage}/*",
        ]  # the bus's rules, and the expiry scan's schedule on the default bus  # fmt: skip
        expiry = handlers["scan_expiring"] = resources.values("aws_lambda_function.scan_expiring")
        assert expiry["role"].endswith(f":role/{APP}-{stage}-expiry")
        [schedule] = account.client("events").list_targets_by_rule(
            Rule=f"{APP}-{stage}-scan_expiring"
        )["Targets"]  # on the default bus
        assert schedule["Arn"] == expiry["arn"]
        assert schedule["DeadLetterConfig"] == {"Arn": queue["arn"]}
        rule = account.client("events").describe_rule(Name=f"{APP}-{stage}-scan_expiring")
        assert rule["ScheduleExpression"] == "rate(1 day)"
        alarms = account.client("cloudwatch").describe_alarms(AlarmNamePrefix=f"{APP}-{stage}-")
        watched = {
            (alarm["MetricName"], alarm["Dimensions"][0]["Value"])
            for alarm in alarms["MetricAlarms"]
        }
        assert watched == {
            ("ApproximateNumberOfMessagesVisible", queue["name"]),
            ("Errors", handlers["record_inventory"]["function_name"]),
            ("Errors", handlers["revocation_cascade"]["function_name"]),
            ("Errors", handlers["scan_expiring"]["function_name"]),
        }
        [rest_api] = [
            api
            for api in account.client("apigateway").get_rest_apis()["items"]
            if api["name"] == f"{APP}-{stage}"
        ]
        assert rest_api["endpointConfiguration"]["types"] == ["REGIONAL"]


def _role_policy(account: Account, role: str) -> dict[str, set[str]]:
    """Action -> resources of a role's inline policy, as moto holds it."""
    iam = account.client("iam")
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    granted: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in _as_list(statement["Action"]):
            granted.setdefault(action, set()).update(_as_list(statement["Resource"]))
    return granted


def _conditions(account: Account, role: str, action: str) -> dict[str, Any]:
    """The Condition of the statement of a role's inline policy that grants `action`."""
    iam = account.client("iam")
    [name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    [statement] = [s for s in document["Statement"] if action in _as_list(s["Action"])]
    return dict(statement.get("Condition", {}))


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_each_role_may_call_only_what_its_function_calls(
    stacks: dict[str, Stack], moto_endpoint: str
) -> None:
    account = Account(moto_endpoint)
    resources = stacks["alice"]
    table = resources.values("aws_dynamodb_table.inventory")["arn"]
    key = resources.values("aws_kms_key.certificates")["arn"]
    certificates = f"arn:aws:acm:{REGION}:123456789012:certificate/*"  # ACM picks the ids
    api = _role_policy(account, f"{APP}-alice-api")
    assert set(api) == {
        "logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:PutObject",
        "s3:ListBucket", "kms:Decrypt", "kms:GenerateDataKey", "dynamodb:GetItem",
        "dynamodb:Query", "events:PutEvents", "acm:ImportCertificate", "acm:AddTagsToCertificate",
        "acm:GetCertificate", "acm:ListCertificates", "iot:GetRegistrationCode",
        "iot:RegisterCACertificate", "iot:DescribeEndpoint", "iot:RegisterCertificate",
        "iot:AttachThingPrincipal", "iot:AttachPolicy", "iot:CreateThing", "iam:PassRole",
        "iot:TagResource", "kms:CreateKey", "kms:TagResource", "kms:CreateAlias", "kms:Sign",
        "kms:GetPublicKey", "kms:ScheduleKeyDeletion", "s3:DeleteObject", "dynamodb:UpdateItem",
    }  # fmt: skip
    bucket = resources.values("aws_s3_bucket.certificates")["arn"]
    assert api["s3:DeleteObject"] == {f"{bucket}/certificates/*"}  # never a revocation
    assert api["dynamodb:UpdateItem"] == {table}
    unscoped = {action for action, resources in api.items() if resources == {"*"}}
    assert unscoped == {  # they take no other resource
        "acm:ListCertificates", "iot:GetRegistrationCode", "iot:RegisterCACertificate",
        "iot:DescribeEndpoint", "iot:RegisterCertificate", "iot:AttachThingPrincipal",
        "kms:CreateKey",
    }  # fmt: skip
    kms = f"arn:aws:kms:{REGION}:123456789012"
    stage_tags = {"aws:RequestTag/app": APP, "aws:RequestTag/stage": "alice"}
    assert _conditions(account, f"{APP}-alice-api", "kms:CreateKey") == {  # CA keys, the stage's
        "StringEquals": {**stage_tags, "kms:KeyUsage": "SIGN_VERIFY"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["app", "stage", "ca"]},
    }
    assert _conditions(account, f"{APP}-alice-api", "kms:Sign") == {
        "StringEquals": {"aws:ResourceTag/app": APP, "aws:ResourceTag/stage": "alice"}
    }
    assert api["kms:Sign"] == api["kms:ScheduleKeyDeletion"] == {f"{kms}:key/*"}
    assert api["kms:CreateAlias"] == {f"{kms}:key/*", f"{kms}:alias/{APP}/alice/*"}
    iot = f"arn:aws:iot:{REGION}:123456789012"
    assert api["iot:AttachPolicy"] == {f"{iot}:cert/*"}
    assert api["iot:CreateThing"] == {f"{iot}:thing/*"}
    assert api["iot:TagResource"] == {f"{iot}:cacert/*"}  # a CA's tags name its stage, no other
    assert _conditions(account, f"{APP}-alice-api", "iot:TagResource") == {
        "StringEquals": {"aws:RequestTag/app": APP, "aws:RequestTag/stage": "alice"},
        "ForAllValues:StringEquals": {"aws:TagKeys": ["app", "stage"]},
    }
    assert api["iam:PassRole"] == {resources.values("aws_iam_role.iot_provisioning")["arn"]}
    assert _conditions(account, f"{APP}-alice-api", "iam:PassRole") == {
        "StringEquals": {"iam:PassedToService": "iot.amazonaws.com"}
    }
    jitp = f"{APP}-alice-jitp"
    assert account.client("iam").list_role_policies(RoleName=jitp)["PolicyNames"] == []
    attached = account.client("iam").list_attached_role_policies(RoleName=jitp)
    assert [policy["PolicyArn"] for policy in attached["AttachedPolicies"]] == [
        "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration"
    ]
    assert api["dynamodb:GetItem"] == {table}
    assert api["dynamodb:Query"] == {f"{table}/index/parent-index", f"{table}/index/expiry-index"}
    expiry = _role_policy(account, f"{APP}-alice-expiry")
    assert expiry == {
        "logs:CreateLogStream": expiry["logs:PutLogEvents"],
        "logs:PutLogEvents": expiry["logs:PutLogEvents"],
        "dynamodb:Query": {f"{table}/index/expiry-index"},
        "dynamodb:UpdateItem": {table},
        "events:PutEvents": {resources.values("aws_cloudwatch_event_bus.certificates")["arn"]},
        "sqs:SendMessage": {resources.values("aws_sqs_queue.inventory_dead_letters")["arn"]},
    }
    inventory = _role_policy(account, f"{APP}-alice-inventory")
    assert set(inventory) == {
        "logs:CreateLogStream", "logs:PutLogEvents", "dynamodb:GetItem", "dynamodb:PutItem",
        "dynamodb:UpdateItem", "sqs:SendMessage", "iot:UpdateCertificate",
        "iot:UpdateCACertificate",
    }  # fmt: skip
    assert inventory["dynamodb:PutItem"] == inventory["dynamodb:UpdateItem"] == {table}
    assert inventory["dynamodb:GetItem"] == {table}
    assert inventory["iot:UpdateCertificate"] == {f"{iot}:cert/*", f"{iot}:cacert/*"}
    cascade = _role_policy(account, f"{APP}-alice-cascade")
    assert set(cascade) == {
        "logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject", "s3:ListBucket",
        "kms:Decrypt", "dynamodb:Query", "iot:ListCertificatesByCA", "iot:UpdateCertificate",
        "iot:UpdateCACertificate", "events:PutEvents", "sqs:SendMessage",
        "iot:DescribeCertificate", "iot:DetachPolicy", "iot:DeleteCertificate",
        "iot:DeleteCACertificate", "iot:ListPrincipalThings", "iot:DetachThingPrincipal",
        "iot:DescribeThing", "iot:DeleteThing",
    }  # fmt: skip
    assert cascade["dynamodb:Query"] == {f"{table}/index/parent-index"}
    assert cascade["iot:ListCertificatesByCA"] == {"*"}  # it takes no other resource
    assert cascade["iot:ListPrincipalThings"] == {"*"}
    assert cascade["iot:DeleteThing"] == {f"{iot}:thing/*"}  # only ours: read first
    for granted in (api, inventory, cascade):
        assert not [action for action in granted if "*" in action]
        for resource in {resource for group in granted.values() for resource in group}:
            if resource == "*":
                assert granted is api or granted is cascade
                continue
            if resource.startswith(f"{iot}:"):  # AWS IoT picks the certificates' and things' ids
                assert resource.split(":")[-1] in ("cert/*", "cacert/*", "thing/*"), resource
                continue
            if resource.startswith(f"{kms}:") and resource != key:  # tags decide on CA keys
                assert resource.split(":")[-1] in ("key/*", f"alias/{APP}/alice/*"), resource
                continue
            assert resource in (key, certificates) or f"{APP}-alice" in resource, resource


def test_only_the_function_roles_can_decrypt_through_s3_and_admins_cannot_decrypt(
    stacks: dict[str, Stack], moto_endpoint: str
) -> None:
    account = Account(moto_endpoint)
    key = stacks["alice"].values("aws_kms_key.certificates")
    policy = json.loads(
        account.client("kms").get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"]
    )
    api_role = stacks["alice"].values("aws_iam_role.lambda")["arn"]
    cascade_role = stacks["alice"].values("aws_iam_role.cascade")["arn"]
    cryptographic = {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom"}
    decrypting: list[tuple[set[str], dict[str, Any]]] = []
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = set(_as_list(statement["Action"]))
        assert not [action for action in actions if "*" in action]
        principals = set(_as_list(statement["Principal"].get("AWS", [])))
        if statement["Sid"] == "AdministerTheKeyWithoutUsingIt":
            assert principals == {"arn:aws:iam::123456789012:root"}
            assert not actions & cryptographic
            assert "kms:PutKeyPolicy" in actions and "kms:ScheduleKeyDeletion" in actions
        elif "kms:Decrypt" in actions:
            decrypting.append((principals, statement["Condition"]["StringEquals"]))
            if principals == {cascade_role}:  # it reads documents, and writes none
                assert actions == {"kms:Decrypt"}
    via: dict[str, set[str]] = {}
    for principals, conditions in decrypting:
        via.setdefault(conditions["kms:ViaService"], set()).update(principals)
    assert via[f"s3.{REGION}.amazonaws.com"] == {api_role, cascade_role}
    assert set(via) == {f"s3.{REGION}.amazonaws.com", f"dynamodb.{REGION}.amazonaws.com"}


def test_every_resource_waits_for_the_teardown_guard(stacks: dict[str, Stack]) -> None:
    """The guard is destroyed first, so a refused destroy changes nothing."""
    for resources in stacks.values():
        guard = resources.resources["terraform_data.teardown_guard"]
        waiting = {re.sub(r"\[.*\]$", "", address) for address in guard["depends_on"]}
        others = {re.sub(r"\[.*\]$", "", address) for address in resources.resources}
        assert others - {guard["address"]} <= waiting, others - waiting
        bucket = resources.resources["aws_s3_bucket.certificates"]
        assert "aws_kms_key.certificates" in bucket["depends_on"]


def register_a_device(account: Account, stack: Stack, stage: str) -> tuple[str, str, str]:
    """A cell CA registered with AWS IoT and a device registered under it with its thing, as the
    stage's API function does them (its device policy, its JITP role, its ownership); the
    documents in memory. (CA ID, device certificate ID, thing name.)"""
    policy = stack.values("aws_iot_policy.devices[0]")["name"]
    role = stack.values("aws_iam_role.iot_provisioning")["arn"]
    registry = AwsIotRegistry(account.client("iot"), policy, role, Ownership(APP, stage))
    service = CertificateService(
        InMemoryStore(), InMemoryInventory(), RecordingPublisher(), NullImporter(),
        iot_registry=registry, iot_device_policy_name=policy,
    )  # fmt: skip
    service.create_root(IssueRequest(CertType.ROOT, fqdn=f"{stage}.example.com"))
    cell = f"cell.{stage}.example.com"
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=cell))
    registered = service.register_with_aws_iot(cell, IotCaRequest("DEFAULT", True, "jitp"))
    device = service.create_device(IssueRequest(
        CertType.CLIENT, parent_fqdn=cell, aws_iot=AwsIotOptions(register=True, thing=True)
    ))  # fmt: skip
    outcome = device.aws_iot
    assert outcome is not None and outcome.error is None, outcome
    assert outcome.certificate_id is not None and outcome.thing_name is not None
    return registered.certificate_id, outcome.certificate_id, outcome.thing_name


def test_alice_tears_down_only_when_allowed_and_leaves_bob_whole(
    module: Module, stacks: dict[str, Stack], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = Account(moto_endpoint)
    alice, bob = stacks["alice"], stacks["bob"]
    registered = {stage: register_a_device(account, stacks[stage], stage) for stage in STAGES}
    iot = account.client("iot")
    for stage in STAGES:  # what made terraform destroy fail: the policy is attached
        policy = stacks[stage].values("aws_iot_policy.devices[0]")["name"]
        targets = iot.list_targets_for_policy(policyName=policy)["targets"]
        assert len(targets) == 1, (stage, targets)
    bucket = alice.values("aws_s3_bucket.certificates")["bucket"]
    alice_key = alice.values("aws_kms_key.certificates")["key_id"]
    bob_key = bob.values("aws_kms_key.certificates")["key_id"]
    with pytest.raises(ClientError, match="Forbidden"):  # moto enforces the TLS-only policy
        account.client("s3").put_object(Bucket=bucket, Key="certificates/a.json", Body=b"{}")
    before = account.names()
    outputs = terraform_outputs(module, "alice")
    assert outputs["certificate_bucket"] == bucket and outputs["api_url"]

    refused = destroy(module, "alice")  # refused while planned: the state is not written
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0
    assert "terraform_data.teardown_lock has lifecycle.prevent_destroy set" in said
    assert "to tear it down, terraform apply -var stage=alice -var allow_teardown=true" in said
    assert account.names() == before
    assert stack(module, "alice").resources.keys() == alice.resources.keys()
    assert account.key_state(alice_key) == "Enabled"
    assert terraform_outputs(module, "alice") == outputs  # docs/aws.md's recipes still work

    lift_the_lock(module, "alice")  # without the allowing apply, the guard refuses
    unallowed = destroy(module, "alice")
    assert unallowed.returncode != 0
    assert "allow_teardown is not set for stage alice" in unallowed.stdout + unallowed.stderr
    assert account.names() == before
    assert account.key_state(alice_key) == "Enabled"

    apply(module, "alice", extra=(ALLOW_TEARDOWN,))  # the documented steps; the lock is back
    allowed = stack(module, "alice")
    assert "terraform_data.teardown_lock" in allowed.resources
    assert allowed.values("aws_s3_bucket.certificates")["force_destroy"] is True
    assert allowed.values("aws_dynamodb_table.inventory")["deletion_protection_enabled"] is False
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # make teardown-aws STAGE=alice
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    assert teardown_iot.main(["--stage", "alice", "--region", REGION]) == 0
    lift_the_lock(module, "alice")
    torn_down = destroy(module, "alice", ALLOW_TEARDOWN)
    assert torn_down.returncode == 0, torn_down.stdout + torn_down.stderr
    bob_ca, bob_device, bob_thing = registered["bob"]
    assert (
        iot.describe_ca_certificate(certificateId=bob_ca)["certificateDescription"]["status"]
        == "ACTIVE"
    )
    described = iot.describe_certificate(certificateId=bob_device)["certificateDescription"]
    assert described["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName=bob_thing)["principals"] == [
        described["certificateArn"]
    ]
    alice_ca, alice_device, alice_thing = registered["alice"]
    with pytest.raises(ClientError, match="ResourceNotFound"):
        iot.describe_ca_certificate(certificateId=alice_ca)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        iot.describe_certificate(certificateId=alice_device)
    with pytest.raises(ClientError, match="ResourceNotFound"):
        iot.describe_thing(thingName=alice_thing)

    after = account.names()
    for kind, group in alice.names().items():
        assert not group & after[kind], (kind, group & after[kind])
    assert account.key_state(alice_key) == "PendingDeletion"
    for kind, group in bob.names().items():
        assert group <= after[kind], (kind, group - after[kind])
    assert account.key_state(bob_key) == "Enabled"
    assert stack(module, "bob").resources.keys() == bob.resources.keys()
    assert stack(module, "alice").resources == {}

"""Terraform: `make package STAGE=...` makes a stage-free module that validates, refuses bad stage
names before any AWS call, and plans against a local moto server with nothing named `-dev`.

Needs the `terraform` binary and the AWS provider 5.x: from TF_PLUGIN_DIR or /opt/tf-plugins (a
local provider mirror, which must then work with the committed lock file), else the registry; the
tests skip, saying so, when terraform is missing or no provider can be installed. The two-stage
apply and destroy is in test_terraform_stages.py; both run on tests/terraform.py.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.events import INVENTORY_EVENT_PATTERN
from devtools.ports import free_port
from tests.helpers import PROJECT_ROOT
from tests.terraform import (
    API_GATEWAY_TIMEOUT_SECONDS,
    LOCK_FILE,
    PLUGIN_DIR,
    REGION,
    TERRAFORM,
    Module,
    package,
    packaged_module,
    run,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed"),
]

PORTAL_RESOURCES = {
    "aws_cognito_user_pool.portal[0]",
    "aws_cognito_user_pool_client.portal[0]",
    "aws_cognito_identity_pool.portal[0]",
    "aws_cognito_identity_pool_roles_attachment.portal[0]",
    "aws_iam_role.portal[0]",
    "aws_iam_role_policy.portal[0]",
}


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Module:
    """Packaged for alice, with alice's workspace (each stage's state is its workspace)."""
    module = packaged_module(tmp_path_factory.mktemp("terraform"), "alice")
    created = module.terraform("workspace", "new", "alice")
    assert created.returncode == 0, created.stderr
    return module


def test_the_package_carries_no_stage_and_serves_every_stage(
    packaged: Module, tmp_path: Path
) -> None:
    """Packaged for alice or for bob, the file is the same: names come from var.stage alone."""
    other = tmp_path / "bob"
    other.mkdir()
    package(other, "bob")
    text = (packaged.directory / "chalice.tf.json").read_text()
    assert (other / "chalice.tf.json").read_text() == text
    for packaged_name in ("alice", "bob", "dev", "iot-cert-service"):
        assert not re.search(rf"\b{packaged_name}\b", text), packaged_name
    functions = packaged.generated()["resource"]["aws_lambda_function"]
    assert 0 < functions["api_handler"]["timeout"] <= API_GATEWAY_TIMEOUT_SECONDS


def test_the_packaged_module_validates(packaged: Module) -> None:
    result = packaged.terraform("validate", "-no-color", "-json")
    report = json.loads(result.stdout)
    assert report["valid"], report
    assert report["warning_count"] == 0, report["diagnostics"]


def test_hand_written_files_are_formatted() -> None:
    result = run(
        [str(TERRAFORM), "fmt", "-check", "-diff", "-no-color"], PROJECT_ROOT / "terraform"
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(not PLUGIN_DIR, reason="no provider mirror to check the lock file against")
def test_the_committed_lock_file_matches_the_mirror(packaged: Module) -> None:
    """init verified the mirror's provider against the committed hashes and changed nothing."""
    committed = (PROJECT_ROOT / "terraform" / LOCK_FILE).read_text()
    assert (packaged.directory / LOCK_FILE).read_text() == committed
    assert re.search(r'version\s+=\s+"5\.\d+\.\d+"', committed)
    assert re.search(r'"h1:[A-Za-z0-9+/=]+"', committed)


@pytest.mark.parametrize(
    ("stage", "messages"),
    [
        ("thirteen-char", []),  # the longest with the default app_name: 16 + 13 characters
        ("fourteen-chars", ["S3 allows at most 37 for a bucket_prefix"]),
        (
            "a" * 40,
            [
                "S3 allows at most 37 for a bucket_prefix",
                "AWS Lambda and EventBridge allow at most 64",
                "IAM allows at most 64",
            ],
        ),
        ("Alice_1", ["lowercase letters, digits and hyphens"]),
        ("alice-", ["lowercase letters, digits and hyphens"]),
    ],
)
def test_stage_names_are_checked_before_any_aws_call(
    packaged: Module, stage: str, messages: list[str]
) -> None:
    """Every endpoint points at a closed port: a refusal names the limit, not a network error."""
    if not messages:  # a valid name, in its own workspace
        created = packaged.terraform("workspace", "new", stage)
        assert created.returncode == 0, created.stderr
    packaged.point_at(f"http://127.0.0.1:{free_port()}", max_retries=1)
    try:
        planned = packaged.terraform(
            "plan", "-input=false", "-no-color", f"-var=stage={stage}",
            workspace=None if messages else stage,
        )  # fmt: skip
    finally:
        (packaged.directory / "moto_override.tf").unlink()
    output = " ".join((planned.stdout + planned.stderr).split())
    assert planned.returncode != 0
    for message in messages:
        assert message in output
    if messages:
        assert "Invalid value for variable" in output
        assert "connection refused" not in output
    else:  # a valid name passes validation and only then fails, on the closed port
        assert "Invalid value for variable" not in output
        assert "connection refused" in output


def _planned_resources(module: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {resource["address"]: resource for resource in module.get("resources", [])}


def plan_json(module: Module, endpoint: str, *variables: str) -> dict[str, Any]:
    """`terraform plan -var stage=alice ...` in alice's workspace, as JSON."""
    module.point_at(endpoint)
    try:
        planned = module.terraform(
            "plan", "-input=false", "-no-color", "-out=plan.bin", f"-var=region={REGION}",
            "-var=stage=alice", *(f"-var={variable}" for variable in variables),
            workspace="alice",
        )  # fmt: skip
        assert planned.returncode == 0, planned.stdout + planned.stderr
        shown = module.terraform("show", "-json", "plan.bin", workspace="alice")
    finally:
        (module.directory / "moto_override.tf").unlink()
    return dict(json.loads(shown.stdout))


def _names_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _names_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _names_in(item)
    elif isinstance(value, str):
        yield value


@pytest.fixture(scope="module")
def default_plan(packaged: Module, moto_endpoint: str) -> dict[str, Any]:
    """alice's plan with every other variable at its default, planned once for the module."""
    return plan_json(packaged, moto_endpoint)


def test_plan_against_moto_creates_the_stack_for_its_stage(default_plan: dict[str, Any]) -> None:
    plan = default_plan
    resources = _planned_resources(plan["planned_values"]["root_module"])
    configuration = _planned_resources(plan["configuration"]["root_module"])
    known = [name for resource in resources.values() for name in _names_in(resource.get("values"))]
    assert not [name for name in known if re.search(r"-dev\b|stage=dev", name)]
    named = [name for name in known if "iot-cert-service-" in name]
    assert len(named) >= 15 and all("iot-cert-service-alice" in name for name in named), named

    versioning = resources["aws_s3_bucket_versioning.certificates"]["values"]
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
    lifecycle = resources["aws_s3_bucket_lifecycle_configuration.certificates"]["values"]
    rules = {rule["id"]: rule for rule in lifecycle["rule"]}
    assert set(rules) == {"expire-deleted-certificates", "abort-incomplete-uploads"}
    expire = rules["expire-deleted-certificates"]  # what a deletion leaves behind its markers
    assert expire["status"] == "Enabled" and expire["filter"][0]["prefix"] == "certificates/"
    assert expire["noncurrent_version_expiration"][0]["noncurrent_days"] == 30
    assert expire["expiration"][0]["expired_object_delete_marker"] is True
    encryption = resources["aws_s3_bucket_server_side_encryption_configuration.certificates"]
    default = encryption["values"]["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert default["sse_algorithm"] == "aws:kms"
    assert "aws_kms_key.certificates" in json.dumps(
        configuration["aws_s3_bucket_server_side_encryption_configuration.certificates"]
    )
    access = resources["aws_s3_bucket_public_access_block.certificates"]["values"]
    assert all(
        access[flag]
        for flag in (
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        )
    )
    bucket = resources["aws_s3_bucket.certificates"]["values"]
    assert bucket["bucket_prefix"] == "iot-cert-service-alice-certs-"
    assert bucket["force_destroy"] is False
    assert configuration["aws_s3_bucket.certificates"]["depends_on"] == ["aws_kms_key.certificates"]

    table = resources["aws_dynamodb_table.inventory"]["values"]
    assert (table["hash_key"], table["range_key"], table["billing_mode"]) == (
        "FQDN", "ParentFQDN", "PAY_PER_REQUEST",
    )  # fmt: skip
    indexes = {index["name"]: index for index in table["global_secondary_index"]}
    assert {name: (index["hash_key"], index["range_key"], index["projection_type"])
             for name, index in indexes.items()} == {
        "parent-index": ("ParentFQDN", "FQDN", "ALL"),
        "expiry-index": ("Expiring", "NotAfter", "ALL"),  # sparse: active items only
    }  # fmt: skip
    assert table["point_in_time_recovery"][0]["enabled"] is True
    assert table["ttl"] == [{"attribute_name": "ExpiresAt", "enabled": True}]  # tombstones
    assert table["deletion_protection_enabled"] is True

    bus = resources["aws_cloudwatch_event_bus.certificates"]["values"]
    rule = resources["aws_cloudwatch_event_rule.record_inventory-event"]["values"]
    target = resources["aws_cloudwatch_event_target.record_inventory-event"]["values"]
    assert (
        rule["event_bus_name"]
        == bus["name"]
        == target["event_bus_name"]
        == "iot-cert-service-alice"
    )
    assert json.loads(rule["event_pattern"]) == INVENTORY_EVENT_PATTERN
    assert target["retry_policy"][0]["maximum_retry_attempts"] > 0
    target_config = configuration["aws_cloudwatch_event_target.record_inventory-event"]
    assert "aws_lambda_function.record_inventory" in json.dumps(target_config["expressions"])
    assert "aws_sqs_queue.inventory_dead_letters" in json.dumps(target_config["expressions"])
    queue = resources["aws_sqs_queue.inventory_dead_letters"]["values"]
    assert queue["sqs_managed_sse_enabled"] is True
    assert resources["aws_kms_key.certificates"]["values"]["enable_key_rotation"] is True

    api = resources["aws_lambda_function.api_handler"]["values"]
    assert api["function_name"] == "iot-cert-service-alice"
    assert 0 < api["timeout"] <= API_GATEWAY_TIMEOUT_SECONDS
    rest_api = resources["aws_api_gateway_rest_api.rest_api"]["values"]
    assert rest_api["name"] == "iot-cert-service-alice"
    assert rest_api["endpoint_configuration"][0]["types"] == ["REGIONAL"]
    assert "*/*" in rest_api["binary_media_types"]


def test_the_endpoint_type_and_the_public_base_url_are_variables(
    packaged: Module, moto_endpoint: str
) -> None:
    """One plan with both set (each plan against moto costs seconds)."""
    plan = plan_json(
        packaged, moto_endpoint, "api_endpoint_type=EDGE",
        "public_base_url=https://pki.example.net/api",
    )  # fmt: skip
    resources = _planned_resources(plan["planned_values"]["root_module"])
    rest_api = resources["aws_api_gateway_rest_api.rest_api"]["values"]
    assert rest_api["endpoint_configuration"][0]["types"] == ["EDGE"]
    # the public base URL reaches the functions
    assert plan["variables"]["public_base_url"]["value"] == "https://pki.example.net/api"
    configuration = _planned_resources(plan["configuration"]["root_module"])
    inventory = configuration["aws_lambda_function.record_inventory"]["expressions"]
    assert "var.public_base_url" in json.dumps(inventory["environment"])
    api = configuration["aws_lambda_function.api_handler"]["expressions"]  # merged (portal.tf)
    assert "local.api_function_environment" in json.dumps(api["environment"])
    api_environment = packaged.generated()["locals"]["api_function_environment"]
    assert api_environment["PUBLIC_BASE_URL"] == "${var.public_base_url}"


def test_a_public_base_url_that_is_no_url_is_refused(packaged: Module) -> None:
    packaged.point_at(f"http://127.0.0.1:{free_port()}", max_retries=1)
    try:
        planned = packaged.terraform(
            "plan", "-input=false", "-no-color", "-var=public_base_url=pki.example.net?x=1"
        )
    finally:
        (packaged.directory / "moto_override.tf").unlink()
    output = " ".join((planned.stdout + planned.stderr).split())
    assert planned.returncode != 0
    assert "public_base_url: an http(s) URL without query or fragment" in output


def console(module: Module, endpoint: str, expressions: list[str], *variables: str) -> list[str]:
    """`terraform console` on alice's configuration: what each expression evaluates to."""
    module.point_at(endpoint)
    environment = {"TF_WORKSPACE": "alice", "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    try:
        evaluated = subprocess.run(
            [str(TERRAFORM), "console", "-var=stage=alice", f"-var=region={REGION}",
             *(f"-var={variable}" for variable in variables)],
            cwd=module.directory, input="".join(f"{line}\n" for line in expressions),
            capture_output=True, text=True, timeout=300, check=False,
            env=dict(os.environ, **environment),
        )  # fmt: skip
    finally:
        (module.directory / "moto_override.tf").unlink()
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    return evaluated.stdout.split()


# How the portal's two API methods are authorized (the generated swagger names this local for
# them only, tests/unit/test_chalice_tf.py).
PORTAL_AUTHORIZATION = ["local.portal_authorization"]


def test_without_portal_nothing_of_it_is_planned(
    packaged: Module, moto_endpoint: str, default_plan: dict[str, Any]
) -> None:
    plan = default_plan
    resources = _planned_resources(plan["planned_values"]["root_module"])
    assert not [address for address in resources if "cognito" in address or "portal" in address]
    assert plan["planned_values"]["outputs"]["portal_url"].get("value") is None
    assert console(packaged, moto_endpoint, PORTAL_AUTHORIZATION) == ['"AWS_IAM"']


def test_the_portal_plans_cognito_sign_in_and_opens_only_its_two_methods(
    packaged: Module, moto_endpoint: str
) -> None:
    plan = plan_json(packaged, moto_endpoint, "portal=true")
    resources = _planned_resources(plan["planned_values"]["root_module"])
    portal = {
        address
        for address in resources
        if ("cognito" in address or "portal" in address) and not address.startswith("data.")
    }
    assert portal == PORTAL_RESOURCES

    pool = resources["aws_cognito_user_pool.portal[0]"]["values"]
    assert pool["name"] == "iot-cert-service-alice-portal"
    assert pool["admin_create_user_config"][0]["allow_admin_create_user_only"] is True
    assert pool["password_policy"][0]["minimum_length"] >= 14
    assert pool["deletion_protection"] == "ACTIVE"
    client = resources["aws_cognito_user_pool_client.portal[0]"]["values"]
    assert client["generate_secret"] is False
    assert set(client["explicit_auth_flows"]) == {
        "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH",
    }  # fmt: skip
    identities = resources["aws_cognito_identity_pool.portal[0]"]["values"]
    assert identities["identity_pool_name"] == "iot-cert-service-alice-portal"
    assert identities["allow_unauthenticated_identities"] is False
    assert resources["aws_iam_role.portal[0]"]["values"]["name"] == "iot-cert-service-alice-portal"

    configuration = _planned_resources(plan["configuration"]["root_module"])
    trust = json.dumps(configuration["data.aws_iam_policy_document.portal_assume"])
    for condition in ("cognito-identity.amazonaws.com:aud", "cognito-identity.amazonaws.com:amr"):
        assert condition in trust
    assert "aws_cognito_identity_pool.portal" in trust
    policy = configuration["aws_iam_role_policy.portal"]["expressions"]["policy"]
    assert policy["references"][0] == "data.aws_iam_policy_document.api_pki_admin.json"
    attachment = json.dumps(configuration["aws_cognito_identity_pool_roles_attachment.portal"])
    assert "aws_iam_role.portal" in attachment and "unauthenticated" not in attachment
    environment = configuration["aws_lambda_function.api_handler"]["expressions"]["environment"]
    assert "local.portal_function_environment" in json.dumps(environment)
    assert console(packaged, moto_endpoint, PORTAL_AUTHORIZATION, "portal=true") == ['"NONE"']
    swagger = json.loads(packaged.generated()["locals"]["chalice_api_swagger"])
    open_methods = {
        (path, method)
        for path, methods in swagger["paths"].items()
        for method, operation in methods.items()
        if "security" not in operation
    }
    portal_methods = {("/portal", "get"), ("/portal/{asset}", "get")}
    assert open_methods == portal_methods | {("/certificates/{certificate}/crl", "get")}
    assert all(
        swagger["paths"][path][method]["x-amazon-apigateway-auth"]["type"]
        == "${local.portal_authorization}"
        for path, method in portal_methods
    )
    crl = swagger["paths"]["/certificates/{certificate}/crl"]["get"]
    assert crl["x-amazon-apigateway-auth"] == {"type": "NONE"}  # with or without the portal


def test_the_deployment_package_holds_the_service_and_no_test_fake(packaged: Module) -> None:
    """The Lambda runs chalicelib and app.py; the fakes of the ports live in tests/ and never
    ship, and neither does the CLI."""
    with zipfile.ZipFile(packaged.directory / "deployment.zip") as package:
        names = package.namelist()
        ours = [name for name in names if name.startswith(("chalicelib/", "app.py"))]
        sources = {name: package.read(name).decode() for name in ours if name.endswith(".py")}
    assert "app.py" in ours and "chalicelib/issuer.py" in ours
    assert not [name for name in names if name.startswith(("tests/", "iotcert/", "bench/"))]
    fakes = ("InMemoryStore", "InMemoryInventory", "RecordingPublisher", "InMemoryIotRegistry")
    shipped = [(name, fake) for name, text in sources.items() for fake in fakes
               if f"class {fake}" in text]  # fmt: skip
    assert shipped == []


# The JITP role and who may pass it ------------------------------------------------------------

THINGS_REGISTRATION = "arn:aws:iam::aws:policy/service-role/AWSIoTThingsRegistration"
"""The AWS managed policy AWS documents for the just-in-time provisioning role."""
JITP_CALLS = {
    "iot:RegisterThing": "*",  # AWS IoT runs the template through RegisterThing
    "iot:CreateThing": f"arn:aws:iot:{REGION}:123456789012:thing/a-device-uuid",
    "iot:DescribeThing": f"arn:aws:iot:{REGION}:123456789012:thing/a-device-uuid",
    "iot:AttachThingPrincipal": f"arn:aws:iot:{REGION}:123456789012:cert/0123abcd",
    "iot:DescribeCertificate": f"arn:aws:iot:{REGION}:123456789012:cert/0123abcd",
    "iot:UpdateCertificate": f"arn:aws:iot:{REGION}:123456789012:cert/0123abcd",
    "iot:AttachPolicy": f"arn:aws:iot:{REGION}:123456789012:cert/0123abcd",
    "iot:GetPolicy": f"arn:aws:iot:{REGION}:123456789012:policy/iot-cert-service-alice-devices",
}
"""What the provisioning template (chalicelib/iot_onboarding.py) has AWS IoT do as the role:
a thing, the certificate attached to it (IAM evaluates AttachThingPrincipal on the certificate's
ARN too) and activated, the device policy attached."""


def _allows(document: dict[str, Any], action: str, resource: str) -> bool:
    """An Allow statement of `document` (no conditions) matching the action and resource."""
    return any(
        statement["Effect"] == "Allow"
        and not statement.get("Condition")
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in _listed(statement["Action"]))
        and any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in _listed(statement["Resource"])
        )
        for statement in document["Statement"]
    )


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_the_jitp_role_has_the_managed_policy_aws_documents_and_nothing_else(
    default_plan: dict[str, Any],
) -> None:
    """Exactly AWSIoTThingsRegistration is attached to the JITP role, no inline subset is left,
    and that policy (AWS's document, as moto ships AWS's managed policies) allows every call the
    template makes, AttachThingPrincipal on a certificate ARN included."""
    resources = _planned_resources(default_plan["planned_values"]["root_module"])
    configuration = _planned_resources(default_plan["configuration"]["root_module"])
    attachments = {
        address: resource["values"]
        for address, resource in resources.items()
        if resource["type"] == "aws_iam_role_policy_attachment"
    }
    assert attachments == {
        "aws_iam_role_policy_attachment.iot_provisioning": {
            "role": "iot-cert-service-alice-jitp",
            "policy_arn": THINGS_REGISTRATION,
        }
    }
    inline_roles = [
        json.dumps(resource["expressions"]["role"])
        for resource in configuration.values()
        if resource["type"] == "aws_iam_role_policy"
    ]
    assert inline_roles and not [role for role in inline_roles if "iot_provisioning" in role]
    assert "data.aws_iam_policy_document.iot_provisioning" not in configuration

    from moto.iam.aws_managed_policies import aws_managed_policies_data

    managed = json.loads(aws_managed_policies_data)[THINGS_REGISTRATION.rsplit("/", 1)[-1]]
    assert managed["Path"] == "/service-role/"
    refused = [call for call in JITP_CALLS.items() if not _allows(managed["Document"], *call)]
    assert refused == []


def test_only_aws_iot_is_handed_the_provisioning_role(default_plan: dict[str, Any]) -> None:
    """The API role's iam:PassRole names the JITP role and the one service it may go to."""
    configuration = _planned_resources(default_plan["configuration"]["root_module"])
    statements = configuration["data.aws_iam_policy_document.api"]["expressions"]["statement"]
    [passing] = [
        statement
        for statement in statements
        if "iam:PassRole" in statement["actions"]["constant_value"]
    ]
    assert passing["actions"]["constant_value"] == ["iam:PassRole"]
    assert passing["resources"]["references"][0] == "aws_iam_role.iot_provisioning.arn"
    assert passing["condition"] == [
        {
            "test": {"constant_value": "StringEquals"},
            "variable": {"constant_value": "iam:PassedToService"},
            "values": {"constant_value": ["iot.amazonaws.com"]},
        }
    ]


# Who the alarms notify ------------------------------------------------------------------------

ON_CALL_TOPIC = f"arn:aws:sns:{REGION}:123456789012:team-on-call"
ALARM_TOPIC = f"arn:aws:sns:{REGION}:123456789012:iot-cert-service-alice-alarms"


def _alarms(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources = _planned_resources(plan["planned_values"]["root_module"])
    alarms = {
        address: resource["values"]
        for address, resource in resources.items()
        if resource["type"] == "aws_cloudwatch_metric_alarm"
    }
    assert len(alarms) == 4, sorted(alarms)  # the dead letters, and each event function's errors
    return alarms


def _key_policy_statements(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    [read] = [
        change["change"]["after"]
        for change in plan["resource_changes"]
        if change["address"] == "data.aws_iam_policy_document.key"
    ]
    return {statement["sid"]: statement for statement in read["statement"]}


def test_by_default_the_alarms_notify_nobody(default_plan: dict[str, Any]) -> None:
    for address, alarm in _alarms(default_plan).items():
        assert not alarm["alarm_actions"] and not alarm["ok_actions"], address  # null: none
    resources = _planned_resources(default_plan["planned_values"]["root_module"])
    assert not [address for address in resources if "aws_sns_" in address]
    assert "AlarmNotificationsThroughSns" not in _key_policy_statements(default_plan)


@pytest.fixture(scope="module")
def notifying_plan(packaged: Module, moto_endpoint: str) -> dict[str, Any]:
    """The plan with every notification set: the alarms' and the expiry notices' (one plan for
    both tests: a plan against moto takes most of half a minute)."""
    return plan_json(
        packaged, moto_endpoint, f"alarm_topic_arn={ON_CALL_TOPIC}",
        "alarm_email=oncall@example.com", f"expiry_notice_topic_arn={ON_CALL_TOPIC}",
        "expiry_notice_email=pki@example.com",
    )  # fmt: skip


def test_every_alarm_notifies_the_given_topic_and_the_alarm_email(
    notifying_plan: dict[str, Any],
) -> None:
    """alarm_topic_arn and alarm_email together: every alarm notifies both topics when it goes
    off and when it clears; the email's topic is made here, under the stack's key, whose policy
    lets CloudWatch use it for that topic's messages from this stage's alarms only."""
    plan = notifying_plan
    for address, alarm in _alarms(plan).items():
        assert set(alarm["alarm_actions"]) == {ON_CALL_TOPIC, ALARM_TOPIC}, address
        assert set(alarm["ok_actions"]) == {ON_CALL_TOPIC, ALARM_TOPIC}, address

    resources = _planned_resources(plan["planned_values"]["root_module"])
    configuration = _planned_resources(plan["configuration"]["root_module"])
    assert resources["aws_sns_topic.alarms[0]"]["values"]["name"] == ALARM_TOPIC.rsplit(":", 1)[1]
    topic = configuration["aws_sns_topic.alarms"]["expressions"]
    assert topic["kms_master_key_id"]["references"][0] == "aws_kms_key.certificates.arn"
    subscription = resources["aws_sns_topic_subscription.alarm_email[0]"]["values"]
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "oncall@example.com")
    [publish] = json.loads(resources["aws_sns_topic_policy.alarms[0]"]["values"]["policy"])[
        "Statement"
    ]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert (publish["Action"], publish["Resource"]) == ("sns:Publish", ALARM_TOPIC)
    alarms_of_the_stage = f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:iot-cert-service-alice-*"
    assert publish["Condition"]["ArnLike"] == {"aws:SourceArn": alarms_of_the_stage}

    statement = _key_policy_statements(plan)["AlarmNotificationsThroughSns"]
    assert statement["principals"] == [
        {"type": "Service", "identifiers": ["cloudwatch.amazonaws.com"]}
    ]
    assert sorted(statement["actions"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    conditions = {item["variable"]: item["values"] for item in statement["condition"]}
    assert conditions == {
        "kms:EncryptionContext:aws:sns:topicArn": [ALARM_TOPIC],
        "aws:SourceArn": [alarms_of_the_stage],
        "aws:SourceAccount": ["123456789012"],
    }
    guarded = configuration["terraform_data.teardown_guard"]["depends_on"]
    assert {"aws_sns_topic_policy.alarms", "aws_sns_topic_subscription.alarm_email"} <= set(guarded)


def test_expiry_notices_reach_the_given_topic_and_the_email_through_one_rule(
    notifying_plan: dict[str, Any], default_plan: dict[str, Any]
) -> None:
    """By default the `expiring` events stay on the bus; with expiry_notice_email and
    expiry_notice_topic_arn one rule on the stage's bus sends them to both, the email's topic
    made here under the stack's key, which EventBridge may use for that topic from that rule."""
    defaults = _planned_resources(default_plan["planned_values"]["root_module"])
    assert not [address for address in defaults if "expiry_notices" in address]
    assert "ExpiryNoticesThroughSns" not in _key_policy_statements(default_plan)

    plan = notifying_plan
    resources = _planned_resources(plan["planned_values"]["root_module"])
    rule = resources["aws_cloudwatch_event_rule.expiry_notices[0]"]["values"]
    assert json.loads(rule["event_pattern"]) == {
        "source": ["certificates"], "detail-type": ["expiring"],
    }  # fmt: skip
    assert rule["event_bus_name"] == "iot-cert-service-alice"
    topic = f"arn:aws:sns:{REGION}:123456789012:iot-cert-service-alice-expiring"
    targets = {resources[f"aws_cloudwatch_event_target.expiry_notices[\"{key}\"]"]["values"]["arn"]
               for key in ("email", "topic")}  # fmt: skip
    assert targets == {topic, ON_CALL_TOPIC}
    subscription = resources["aws_sns_topic_subscription.expiry_email[0]"]["values"]
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "pki@example.com")
    [publish] = json.loads(resources["aws_sns_topic_policy.expiry_notices[0]"]["values"]["policy"])[
        "Statement"
    ]
    rule_arn = (
        f"arn:aws:events:{REGION}:123456789012:rule/iot-cert-service-alice/"
        "iot-cert-service-alice-expiry-notices"
    )
    assert publish["Principal"] == {"Service": "events.amazonaws.com"}
    assert publish["Condition"]["ArnEquals"] == {"aws:SourceArn": rule_arn}
    statement = _key_policy_statements(plan)["ExpiryNoticesThroughSns"]
    assert statement["principals"] == [{"type": "Service", "identifiers": ["events.amazonaws.com"]}]
    conditions = {item["variable"]: item["values"] for item in statement["condition"]}
    assert conditions == {
        "kms:EncryptionContext:aws:sns:topicArn": [topic],
        "aws:SourceArn": [rule_arn],
        "aws:SourceAccount": ["123456789012"],
    }

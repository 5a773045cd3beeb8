"""The post-processing of the generated chalice.tf.json, on a file recorded from chalice 1.34."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from devtools import chalice_tf

RECORDED = Path(__file__).resolve().parent.parent / "data" / "chalice.tf.json"


@pytest.fixture
def generated() -> dict[str, Any]:
    return json.loads(RECORDED.read_text())


@pytest.fixture
def processed(generated: dict[str, Any]) -> dict[str, Any]:
    return chalice_tf.postprocess(copy.deepcopy(generated), "iot-cert-service", "dev")


def test_the_recorded_file_has_what_the_script_fixes(generated: dict[str, Any]) -> None:
    """A guard on the recording: if chalice changes its output, these facts tell what moved."""
    assert generated["terraform"]["required_version"] == ">= 0.12.26, < 1.4.0"
    assert "null" in generated["terraform"]["required_providers"]
    assert "null_data_source" in generated["data"]
    rule = generated["resource"]["aws_cloudwatch_event_rule"]["record_inventory-event"]
    assert "event_bus_name" not in rule
    assert generated["resource"]["aws_api_gateway_deployment"]["rest_api"]["stage_name"] == "api"


def test_version_pins_and_null_provider_are_removed(processed: dict[str, Any]) -> None:
    assert "terraform" not in processed
    assert "null_data_source" not in processed["data"]
    assert "null_data_source" not in json.dumps(processed)
    assert set(processed["data"]) == {"aws_caller_identity", "aws_partition", "aws_region"}


def test_the_inventory_rule_is_on_the_custom_bus_with_a_stage_prefixed_name(
    processed: dict[str, Any],
) -> None:
    rule = processed["resource"]["aws_cloudwatch_event_rule"]["record_inventory-event"]
    target = processed["resource"]["aws_cloudwatch_event_target"]["record_inventory-event"]
    assert rule["event_bus_name"] == "${aws_cloudwatch_event_bus.certificates.name}"
    assert target["event_bus_name"] == rule["event_bus_name"]
    assert rule["name"] == "iot-cert-service-dev-record_inventory"
    assert json.loads(rule["event_pattern"]) == {
        "source": ["certificates"],
        "detail-type": ["created"],
    }
    assert target["arn"] == "${aws_lambda_function.record_inventory.arn}"


def test_functions_get_the_aws_backend_environment(processed: dict[str, Any]) -> None:
    functions = processed["resource"]["aws_lambda_function"]
    assert set(functions) == {"api_handler", "record_inventory"}
    for function in functions.values():
        variables = function["environment"]["variables"]
        assert variables["BACKEND"] == "aws"
        assert variables["CERTIFICATE_BUCKET_NAME"] == "${aws_s3_bucket.certificates.bucket}"
        assert variables["INVENTORY_TABLE_NAME"] == "${aws_dynamodb_table.inventory.name}"
        assert variables["EVENT_BUS_NAME"] == "${aws_cloudwatch_event_bus.certificates.name}"
        assert variables["KMS_KEY_ID"] == "${aws_kms_key.certificates.arn}"
        assert function["role"] == "${aws_iam_role.lambda.arn}"


def test_every_route_requires_sigv4(processed: dict[str, Any]) -> None:
    swagger = json.loads(processed["locals"]["chalice_api_swagger"])
    assert swagger["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    operations = [
        (path, method, operation)
        for path, methods in swagger["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) == 6
    for path, method, operation in operations:
        assert operation["security"] == [{"sigv4": []}], (path, method)


def test_the_api_stage_is_its_own_resource(processed: dict[str, Any]) -> None:
    resources = processed["resource"]
    deployment = resources["aws_api_gateway_deployment"]["rest_api"]
    assert "stage_name" not in deployment and "stage_description" not in deployment
    assert deployment["triggers"] == {"redeployment": "${md5(local.chalice_api_swagger)}"}
    assert resources["aws_api_gateway_stage"]["rest_api"]["stage_name"] == "api"
    assert processed["output"]["EndpointURL"]["value"].startswith("${aws_api_gateway_stage.")


def test_main_rewrites_the_file_in_place(tmp_path: Path) -> None:
    target = tmp_path / "chalice.tf.json"
    target.write_text(RECORDED.read_text())
    assert chalice_tf.main([str(target)]) == 0
    rewritten = json.loads(target.read_text())
    assert "terraform" not in rewritten
    assert chalice_tf.main([]) == 2


def _wildcard_actions(actions: list[str]) -> list[str]:
    return [action for action in actions if action == "*" or action.endswith(":*")]


def test_no_iam_statement_in_the_project_grants_wildcard_actions(
    processed: dict[str, Any],
) -> None:
    """Hand-written Terraform and the generated file: no `*`, `s3:*`, `acm:*`... action."""
    terraform_dir = RECORDED.parent.parent.parent / "terraform"
    hand_written = "\n".join(path.read_text() for path in sorted(terraform_dir.glob("*.tf")))
    action_lists = re.findall(r"\bactions\s*=\s*\[(.*?)\]", hand_written, flags=re.DOTALL)
    assert len(action_lists) >= 8, "expected the role's and the example policies' statements"
    for action_list in action_lists:
        actions = re.findall(r'"([^"]+)"', action_list)
        assert actions and not _wildcard_actions(actions), action_list
    assert "Action" not in json.dumps(processed)  # Chalice's own IAM policy is not generated
    iam = (terraform_dir / "iam.tf").read_text()
    assert '["acm:ImportCertificate", "acm:AddTagsToCertificate"]' in iam
    assert _wildcard_actions(["s3:*", "acm:*", "*", "s3:GetObject"]) == ["s3:*", "acm:*", "*"]

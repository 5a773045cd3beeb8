"""The post-processing of the generated chalice.tf.json, on a file recorded from chalice 1.34
(`chalice package --pkg-format terraform --stage dev`, before post-processing)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.api.documents import BINARY_TYPES, PUBLIC_ROUTES
from chalicelib.api.portal import PORTAL_ROUTES
from devtools import chalice_tf

RECORDED = Path(__file__).resolve().parent.parent / "data" / "chalice.tf.json"
TERRAFORM_DIR = RECORDED.parent.parent.parent / "terraform"
CHALICE_CONFIG = json.loads((TERRAFORM_DIR.parent / ".chalice" / "config.json").read_text())
API_GATEWAY_TIMEOUT_SECONDS = 29


def recorded() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(RECORDED.read_text())
    return document


@pytest.fixture
def generated() -> dict[str, Any]:
    return recorded()


@pytest.fixture
def processed(generated: dict[str, Any]) -> dict[str, Any]:
    return chalice_tf.postprocess(copy.deepcopy(generated))


def swagger_of(document: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(document["locals"]["chalice_api_swagger"]))


def test_the_recorded_file_has_what_the_script_fixes(generated: dict[str, Any]) -> None:
    """A guard on the recording: if chalice changes its output, these facts tell what moved."""
    assert generated["terraform"]["required_version"] == ">= 0.12.26, < 1.4.0"
    assert "null" in generated["terraform"]["required_providers"]
    assert "null_data_source" in generated["data"]
    resources = generated["resource"]
    rule = resources["aws_cloudwatch_event_rule"]["record_inventory-event"]
    assert "event_bus_name" not in rule
    assert resources["aws_api_gateway_deployment"]["rest_api"]["stage_name"] == "api"
    functions = resources["aws_lambda_function"]
    assert functions["api_handler"]["function_name"] == "iot-cert-service-dev"
    assert functions["record_inventory"]["function_name"] == "iot-cert-service-dev-record_inventory"
    assert resources["aws_api_gateway_rest_api"]["rest_api"]["name"] == "iot-cert-service"
    assert "stage=dev" in functions["api_handler"]["tags"]["aws-chalice"]
    assert resources["aws_api_gateway_rest_api"]["rest_api"]["endpoint_configuration"] == {
        "types": ["EDGE"]
    }


def test_version_pins_and_null_provider_are_removed(processed: dict[str, Any]) -> None:
    assert "terraform" not in processed
    assert "null_data_source" not in processed["data"]
    assert "null_data_source" not in json.dumps(processed)
    assert set(processed["data"]) == {"aws_caller_identity", "aws_partition", "aws_region"}


def test_every_name_comes_from_the_terraform_variables(processed: dict[str, Any]) -> None:
    text = json.dumps(processed)
    assert not re.search(r"iot-cert-service|\bdev\b", text)
    assert processed["locals"]["function_names"] == {
        "api_handler": "${var.app_name}-${var.stage}",
        "record_inventory": "${var.app_name}-${var.stage}-record_inventory",
        "revocation_cascade": "${var.app_name}-${var.stage}-revocation_cascade",
    }
    resources = processed["resource"]
    for key, function in resources["aws_lambda_function"].items():
        assert function["function_name"] == f"${{local.function_names.{key}}}"
        assert function["tags"]["aws-chalice"] == (
            "version=1.34.0:stage=${var.stage}:app=${var.app_name}"
        )
        assert function["depends_on"] == ["aws_cloudwatch_log_group.functions"]
    rule = resources["aws_cloudwatch_event_rule"]["record_inventory-event"]
    assert rule["name"] == "${var.app_name}-${var.stage}-record_inventory"
    assert (
        resources["aws_api_gateway_rest_api"]["rest_api"]["name"] == "${var.app_name}-${var.stage}"
    )
    assert swagger_of(processed)["info"]["title"] == "${var.app_name}-${var.stage}"


def test_the_packaged_stage_makes_no_difference(generated: dict[str, Any]) -> None:
    """Packaged as stage `alice`, the processed file is the same as packaged as `dev`."""
    as_alice = json.loads(
        json.dumps(generated)
        .replace("iot-cert-service-dev", "iot-cert-service-alice")
        .replace("stage=dev", "stage=alice")
    )
    assert chalice_tf.packaged_app_and_stage(as_alice) == ("iot-cert-service", "alice")
    assert chalice_tf.postprocess(as_alice) == chalice_tf.postprocess(generated)


def test_a_name_chalice_did_not_derive_from_app_and_stage_is_refused(
    generated: dict[str, Any],
) -> None:
    functions = generated["resource"]["aws_lambda_function"]
    functions["record_inventory"]["function_name"] = "inventory-writer"
    with pytest.raises(ValueError, match=r"'inventory-writer' does not start with"):
        chalice_tf.postprocess(generated)


def test_a_leftover_packaged_name_is_refused(generated: dict[str, Any]) -> None:
    generated["output"]["Leftover"] = {"value": "arn:aws:logs:::iot-cert-service-dev-extra"}
    with pytest.raises(ValueError, match=r"still carry .*iot-cert-service-dev-extra"):
        chalice_tf.postprocess(generated)


def test_the_inventory_rule_is_on_the_custom_bus_and_never_loses_an_event(
    processed: dict[str, Any],
) -> None:
    resources = processed["resource"]
    rule = resources["aws_cloudwatch_event_rule"]["record_inventory-event"]
    target = resources["aws_cloudwatch_event_target"]["record_inventory-event"]
    assert rule["event_bus_name"] == "${aws_cloudwatch_event_bus.certificates.name}"
    assert target["event_bus_name"] == rule["event_bus_name"]
    assert json.loads(rule["event_pattern"]) == {
        "source": ["certificates"],
        "detail-type": ["created", "renewed", "revoked"],
    }
    assert target["arn"] == "${aws_lambda_function.record_inventory.arn}"
    dead_letters = "${aws_sqs_queue.inventory_dead_letters.arn}"
    assert target["dead_letter_config"] == {"arn": dead_letters}
    assert set(target["retry_policy"]) == {"maximum_event_age_in_seconds", "maximum_retry_attempts"}
    functions = resources["aws_lambda_function"]
    assert functions["record_inventory"]["dead_letter_config"] == {"target_arn": dead_letters}
    assert "dead_letter_config" not in functions["api_handler"]  # synchronous: no DLQ applies


def test_the_cascade_rule_takes_ca_revocations_and_its_own_continuations(
    processed: dict[str, Any],
) -> None:
    resources = processed["resource"]
    rule = resources["aws_cloudwatch_event_rule"]["revocation_cascade-event"]
    target = resources["aws_cloudwatch_event_target"]["revocation_cascade-event"]
    assert rule["event_bus_name"] == target["event_bus_name"]
    assert json.loads(rule["event_pattern"]) == {
        "source": ["certificates"],
        "detail-type": ["revoked", "revocation-cascade"],
        "detail": {"Type": ["Root", "Intermediate"]},
    }
    assert target["dead_letter_config"] == {"arn": "${aws_sqs_queue.inventory_dead_letters.arn}"}
    cascade = resources["aws_lambda_function"]["revocation_cascade"]
    assert cascade["timeout"] == 300


def test_each_function_gets_its_role_and_the_aws_backend_environment(
    processed: dict[str, Any],
) -> None:
    functions = processed["resource"]["aws_lambda_function"]
    assert set(functions) == {"api_handler", "record_inventory", "revocation_cascade"}
    assert functions["api_handler"]["role"] == "${aws_iam_role.lambda.arn}"
    assert functions["record_inventory"]["role"] == "${aws_iam_role.inventory.arn}"
    assert functions["revocation_cascade"]["role"] == "${aws_iam_role.cascade.arn}"
    for key, function in functions.items():
        variables = function["environment"]["variables"]
        if key == "api_handler":  # merged with the portal's settings in Terraform
            assert variables == (
                "${merge(local.api_function_environment, local.portal_function_environment)}"
            )
            variables = processed["locals"]["api_function_environment"]
        assert variables["BACKEND"] == "aws"
        assert variables["CERTIFICATE_BUCKET_NAME"] == "${aws_s3_bucket.certificates.bucket}"
        assert variables["INVENTORY_TABLE_NAME"] == "${aws_dynamodb_table.inventory.name}"
        assert variables["INVENTORY_INDEX_NAME"] == "${local.inventory_index}"
        assert variables["EVENT_BUS_NAME"] == "${aws_cloudwatch_event_bus.certificates.name}"
        assert variables["KMS_KEY_ID"] == "${aws_kms_key.certificates.arn}"
        assert variables["PUBLIC_BASE_URL"] == "${var.public_base_url}"
        assert variables["IOT_DEVICE_POLICY_NAME"] == "${local.iot_device_policy_name}"
        assert variables["IOT_PROVISIONING_ROLE_ARN"] == "${aws_iam_role.iot_provisioning.arn}"
        assert variables["SERVICE_APP"] == "${var.app_name}"
        assert variables["SERVICE_STAGE"] == "${var.stage}"


def test_the_api_function_ends_before_api_gateway_cuts_the_request(
    processed: dict[str, Any],
) -> None:
    """API Gateway answers 504 after 29 s: the function times out first, and logs it."""
    api = processed["resource"]["aws_lambda_function"]["api_handler"]
    assert 0 < api["timeout"] < API_GATEWAY_TIMEOUT_SECONDS
    dev = CHALICE_CONFIG["stages"]["dev"]["lambda_functions"]["api_handler"]
    assert api["timeout"] == dev["lambda_timeout"]


def test_every_route_requires_sigv4(generated: dict[str, Any], processed: dict[str, Any]) -> None:
    swagger = swagger_of(processed)
    assert swagger["securityDefinitions"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"
    operations = [
        (path, method, operation)
        for path, methods in swagger["paths"].items()
        for method, operation in methods.items()
    ]
    generated_operations = sum(len(methods) for methods in swagger_of(generated)["paths"].values())
    assert len(operations) == generated_operations >= 6
    for path, method, operation in operations:
        if (path, method) in PORTAL_ROUTES | PUBLIC_ROUTES:
            continue  # test_the_portal_is_open_only_with_portal_true, test_crls_are_public
        assert operation["security"] == [{"sigv4": []}], (path, method)
        assert "x-amazon-apigateway-auth" not in operation, (path, method)


def test_crls_are_public(processed: dict[str, Any]) -> None:
    """A relying party fetches a CRL from a certificate's CRL Distribution Point unsigned."""
    swagger = swagger_of(processed)
    assert {("/certificates/{certificate}/crl", "get")} == PUBLIC_ROUTES
    operation = swagger["paths"]["/certificates/{certificate}/crl"]["get"]
    assert "security" not in operation
    assert operation["x-amazon-apigateway-auth"] == {"type": "NONE"}


def test_the_portal_is_open_only_with_portal_true(processed: dict[str, Any]) -> None:
    """Exactly the portal's two GET methods take their authorization from the Terraform local
    (NONE with `portal = true`, else AWS_IAM); no other method names it."""
    swagger = swagger_of(processed)
    portal_authorized = {
        (path, method)
        for path, methods in swagger["paths"].items()
        for method, operation in methods.items()
        if "${local.portal_authorization}" in json.dumps(operation)
    }
    assert portal_authorized == PORTAL_ROUTES == {("/portal", "get"), ("/portal/{asset}", "get")}
    for path, method in PORTAL_ROUTES:
        operation = swagger["paths"][path][method]
        assert "security" not in operation
        assert operation["x-amazon-apigateway-auth"] == {"type": "${local.portal_authorization}"}
    portal_tf = (TERRAFORM_DIR / "portal.tf").read_text()
    assert re.search(r'portal_authorization\s*=\s*var\.portal \? "NONE" : "AWS_IAM"', portal_tf)


def test_a_package_without_the_portal_routes_is_refused(generated: dict[str, Any]) -> None:
    swagger = swagger_of(generated)
    del swagger["paths"]["/portal/{asset}"]
    generated["locals"]["chalice_api_swagger"] = json.dumps(swagger)
    with pytest.raises(ValueError, match=r"no portal route GET /portal/\{asset\}"):
        chalice_tf.postprocess(generated)


def test_the_endpoint_type_is_the_terraform_variable(processed: dict[str, Any]) -> None:
    api = processed["resource"]["aws_api_gateway_rest_api"]["rest_api"]
    assert api["endpoint_configuration"] == {"types": ["${var.api_endpoint_type}"]}
    variables = (TERRAFORM_DIR / "variables.tf").read_text()
    assert re.search(r'variable "api_endpoint_type" \{[^}]*default\s*=\s*"REGIONAL"', variables)


def test_the_api_stage_is_its_own_resource(processed: dict[str, Any]) -> None:
    resources = processed["resource"]
    deployment = resources["aws_api_gateway_deployment"]["rest_api"]
    assert "stage_name" not in deployment and "stage_description" not in deployment
    assert deployment["triggers"] == {"redeployment": "${md5(local.chalice_api_swagger)}"}
    assert resources["aws_api_gateway_stage"]["rest_api"]["stage_name"] == "api"
    assert processed["output"]["EndpointURL"]["value"].startswith("${aws_api_gateway_stage.")


def first_accept_media_type(accept: str) -> str:
    return accept.split(",")[0].split(";")[0].strip().lower()


def api_gateway_returns_bytes(accept: str, binary_media_types: list[str]) -> bool:
    """API Gateway's documented rule for a Lambda proxy body marked `isBase64Encoded`: decoded to
    bytes only when the FIRST Accept media type matches a binary media type (`*/*` in the list
    matches any type, `type/*` any subtype); otherwise the client receives the base64 text."""
    first = first_accept_media_type(accept)
    kind = first.split("/")[0]
    return any(
        listed in ("*/*", first, f"{kind}/*") for listed in (t.lower() for t in binary_media_types)
    )


ACCEPT_CASES = {
    "curl's default": "*/*",
    "the CRL type": "application/pkix-crl",
    "the PKCS#12 type": "application/x-pkcs12",
    "python requests": requests.utils.default_headers()["Accept"],
}


@pytest.mark.parametrize("accept", ACCEPT_CASES.values(), ids=ACCEPT_CASES.keys())
def test_binary_bodies_reach_every_client_as_bytes(
    processed: dict[str, Any], generated: dict[str, Any], accept: str
) -> None:
    """The deployed API lists `*/*` beside the app's binary types; without it (the generated
    swagger), curl's and requests' `*/*` would get base64 text."""
    swagger_types = swagger_of(processed)["x-amazon-apigateway-binary-media-types"]
    assert swagger_types == [*BINARY_TYPES, "*/*"]
    api = processed["resource"]["aws_api_gateway_rest_api"]["rest_api"]
    assert api["binary_media_types"] == swagger_types
    assert api_gateway_returns_bytes(accept, swagger_types)
    unprocessed = swagger_of(generated)["x-amazon-apigateway-binary-media-types"]
    assert unprocessed == list(BINARY_TYPES)
    assert api_gateway_returns_bytes(accept, unprocessed) == (accept in BINARY_TYPES)


def test_the_rule_model_only_matches_the_first_accept_type() -> None:
    """A negative control for `api_gateway_returns_bytes`: a later Accept type does not count."""
    assert not api_gateway_returns_bytes("text/html, application/x-pkcs12", list(BINARY_TYPES))
    assert api_gateway_returns_bytes("application/x-pkcs12;q=0.9, text/html", list(BINARY_TYPES))
    assert api_gateway_returns_bytes("application/json", ["application/*"])


def test_the_chalice_stage_packaged_is_dev_unless_the_config_has_an_aws_stage_of_that_name() -> (
    None
):
    assert chalice_tf.chalice_stage_for("alice", CHALICE_CONFIG) == "dev"
    assert chalice_tf.chalice_stage_for("dev", CHALICE_CONFIG) == "dev"
    assert chalice_tf.chalice_stage_for("local", CHALICE_CONFIG) == "dev"  # not an AWS stage
    with_alice = copy.deepcopy(CHALICE_CONFIG)
    with_alice["stages"]["alice"] = {**CHALICE_CONFIG["stages"]["dev"], "lambda_memory_size": 512}
    assert chalice_tf.chalice_stage_for("alice", with_alice) == "alice"


def test_postprocess_rewrites_the_file_in_place(tmp_path: Path) -> None:
    target = tmp_path / "chalice.tf.json"
    target.write_text(json.dumps(recorded()))
    assert chalice_tf.main(["postprocess", str(target)]) == 0
    rewritten = json.loads(target.read_text())
    assert "terraform" not in rewritten
    assert rewritten["locals"]["function_names"]["api_handler"] == "${var.app_name}-${var.stage}"
    with pytest.raises(SystemExit) as usage:
        chalice_tf.main([])
    assert usage.value.code == 2


def test_no_iam_statement_in_the_project_grants_wildcard_actions(
    processed: dict[str, Any],
) -> None:
    """Hand-written Terraform and the generated file: no `*`, `s3:*`, `kms:Get*`... action."""
    hand_written = "\n".join(path.read_text() for path in sorted(TERRAFORM_DIR.glob("*.tf")))
    action_lists = re.findall(r"\bactions\s*=\s*\[(.*?)\]", hand_written, flags=re.DOTALL)
    assert len(action_lists) >= 15, "expected the roles', key's, queue's and example statements"
    for action_list in action_lists:
        actions = re.findall(r'"([^"]+)"', action_list)
        assert actions and not [action for action in actions if "*" in action], action_list
    assert "Action" not in json.dumps(processed)  # Chalice's own IAM policy is not generated
    iam = (TERRAFORM_DIR / "iam.tf").read_text()
    assert '["acm:ImportCertificate", "acm:AddTagsToCertificate", "acm:GetCertificate"]' in iam
    assert "kms:Encrypt" not in iam  # S3 SSE-KMS needs GenerateDataKey (put) and Decrypt (get)


@pytest.mark.parametrize("stage", ["Bad_Stage", "alice-", "1alice", "al ice", ""])
def test_a_stage_name_terraform_would_refuse_is_refused_before_packaging(
    stage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make package STAGE=Bad_Stage` stops at once, with the rule, exit status 2 (a usage
    error); nothing is written."""
    with pytest.raises(SystemExit) as refused:
        chalice_tf.main(["package", "--stage", stage, str(tmp_path)])
    assert refused.value.code == 2
    error = capsys.readouterr().err
    assert f"argument --stage: {stage!r} is not a stage name" in error
    assert "lowercase letters, digits and hyphens, starting with a letter" in error
    assert list(tmp_path.iterdir()) == []


def test_the_stage_rule_is_terraform_s() -> None:
    """The pattern is the one terraform/variables.tf validates var.stage with, and accepts the
    names Terraform accepts."""
    variables = (TERRAFORM_DIR / "variables.tf").read_text()
    stage_block = variables.split('variable "stage"', 1)[1].split("\nvariable ", 1)[0]
    [pattern] = re.findall(r'can\(regex\("([^"]+)", var\.stage\)\)', stage_block)
    assert pattern.replace("\\\\", "\\") == chalice_tf.STAGE_NAME.pattern
    for stage in ("dev", "alice", "a", "team-2", "thirteen-char"):
        assert chalice_tf.stage_name(stage) == stage


def test_a_schedule_stays_on_the_default_bus_and_its_function_gets_its_role() -> None:
    """EventBridge runs schedules on the default bus only: the expiry scan's rule and target keep
    it, while every pattern's moves to the stack's bus."""
    document = {"resource": {
        "aws_cloudwatch_event_rule": {
            "scan_expiring-event": {"name": "scan_expiring-event",
                                    "schedule_expression": "rate(1 day)"},
            "record_inventory-event": {"name": "record_inventory-event", "event_pattern": "{}"},
        },
        "aws_cloudwatch_event_target": {
            name: {"rule": f"${{aws_cloudwatch_event_rule.{name}-event.name}}",
                   "arn": f"${{aws_lambda_function.{name}.arn}}"}
            for name in ("scan_expiring", "record_inventory")
        },
        "aws_lambda_function": {"scan_expiring": {}, "record_inventory": {}},
    }}  # fmt: skip
    chalice_tf.put_rules_on_custom_bus(document)
    chalice_tf.never_lose_events(document)
    resources = document["resource"]
    rules, targets = (
        resources["aws_cloudwatch_event_rule"],
        resources["aws_cloudwatch_event_target"],
    )
    assert "event_bus_name" not in rules["scan_expiring-event"]
    assert "event_bus_name" not in targets["scan_expiring"]
    assert (
        rules["record_inventory-event"]["event_bus_name"]
        == targets["record_inventory"]["event_bus_name"]
        == chalice_tf.EVENT_BUS
    )
    assert resources["aws_lambda_function"]["scan_expiring"]["role"] == (
        "${aws_iam_role.expiry.arn}"
    )

"""Packages the app for Terraform: `chalice package --pkg-format terraform`, then fits its output.

Chalice 1.x writes a file for Terraform < 1.4 and AWS provider < 5, names everything after the
stage it packaged, puts event rules on the default bus and leaves the API open. This makes it fit
the hand-written infrastructure in terraform/:
- one stage name drives everything: every generated name (functions, API, event rules, the
  function tags) becomes a Terraform interpolation of `var.app_name` and `var.stage`, so the file
  carries no stage name and `terraform apply -var stage=<name>` alone names the whole stack; the
  functions' names are also written as `local.function_names`, which the log groups use;
- its version pins are removed (terraform/versions.tf holds the constraints), and so is the
  deprecated `null_data_source` (no `hashicorp/null` needed);
- event rules go on the custom bus; their targets retry and dead-letter into the stack's queue,
  which is also the event handlers' own dead-letter queue, and the handlers get their own role;
- the functions get the environment that points them at the bucket, table, bus and key, and at
  the AWS IoT device policy and provisioning role, and that names their app and stage;
- every API route requires IAM (SigV4) authorization, the endpoint type is `var.api_endpoint_type`
  and `*/*` is a binary media type (see `allow_binary_responses_for_any_accept`);
- the portal's two GET methods take their authorization from `local.portal_authorization`
  (terraform/portal.tf): NONE with `portal = true`, else AWS_IAM; the API function's environment
  is merged with `local.portal_function_environment` (its Cognito settings, or nothing);
- the public routes (a CA's CRL) are authorized NONE: relying parties fetch them unsigned;
- the API stage is its own resource, as AWS provider 5 wants.

Which settings are packaged: those of the Chalice stage named like the Terraform stage when
.chalice/config.json has it as an AWS stage (`manage_iam_role: false`), else those of `dev`, the
settings every AWS stage shares. Names never come from there.

Usage: python -m devtools.chalice_tf package [--stage NAME] DIRECTORY
       python -m devtools.chalice_tf postprocess DIRECTORY/chalice.tf.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from chalicelib.api.documents import PUBLIC_ROUTES
from chalicelib.api.portal import PORTAL_ROUTES
from chalicelib.ownership import NAME_PATTERN, NAME_RULE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = PROJECT_ROOT / ".chalice" / "config.json"
DEFAULT_CHALICE_STAGE = "dev"
STAGE_NAME = NAME_PATTERN
"""The rule terraform/variables.tf's validation applies to var.stage (the characters S3 bucket
names allow): checked here too, so that `make package STAGE=...` refuses a name the apply would
refuse, before minutes of packaging. The length limits depend on var.app_name, which only
Terraform knows; it checks them."""
APP_NAME = "${var.app_name}"
NAME_PREFIX = "${var.app_name}-${var.stage}"
EVENT_BUS = "${aws_cloudwatch_event_bus.certificates.name}"
DEAD_LETTER_QUEUE = "${aws_sqs_queue.inventory_dead_letters.arn}"
EVENT_HANDLER_ROLES = {
    "record_inventory": "${aws_iam_role.inventory.arn}",
    "revocation_cascade": "${aws_iam_role.cascade.arn}",
    "scan_expiring": "${aws_iam_role.expiry.arn}",
}
"""Each event handler's own role (terraform/iam.tf): the inventory function never reads a
certificate document; the cascade reads CA documents for their generations."""
EVENT_RETRY = {
    "maximum_event_age_in_seconds": "${local.event_retry.maximum_event_age_in_seconds}",
    "maximum_retry_attempts": "${local.event_retry.maximum_retry_attempts}",
}
FUNCTION_ENVIRONMENT = {
    "BACKEND": "aws",
    "CERTIFICATE_BUCKET_NAME": "${aws_s3_bucket.certificates.bucket}",
    "INVENTORY_TABLE_NAME": "${aws_dynamodb_table.inventory.name}",
    "INVENTORY_INDEX_NAME": "${local.inventory_index}",
    "INVENTORY_EXPIRY_INDEX_NAME": "${local.expiry_index}",
    "EVENT_BUS_NAME": EVENT_BUS,
    "KMS_KEY_ID": "${aws_kms_key.certificates.arn}",
    "PUBLIC_BASE_URL": "${var.public_base_url}",
    "IOT_DEVICE_POLICY_NAME": "${local.iot_device_policy_name}",
    "IOT_PROVISIONING_ROLE_ARN": "${aws_iam_role.iot_provisioning.arn}",
    "CA_SIGNER_ROLE_ARN": "${aws_iam_role.lambda.arn}",
    "EXPIRY_NOTICE_DAYS": "${var.expiry_notice_days}",
    "PURGE_EXPIRED_AFTER_DAYS": "${var.purge_expired_after_days}",
    "SERVICE_APP": "${var.app_name}",
    "SERVICE_STAGE": "${var.stage}",
}
"""Where the functions find their stack; SERVICE_APP and SERVICE_STAGE are the owner that every
resource they create in AWS carries (chalicelib/ownership.py)."""
ENDPOINT_TYPE = "${var.api_endpoint_type}"
ANY_MEDIA_TYPE = "*/*"
SIGV4_SCHEME = {
    "sigv4": {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "x-amazon-apigateway-authtype": "awsSigv4",
    }
}
API_FUNCTION = "api_handler"
PORTAL_AUTHORIZATION = {"type": "${local.portal_authorization}"}
API_FUNCTION_ENVIRONMENT = (
    "${merge(local.api_function_environment, local.portal_function_environment)}"
)
_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_CHALICE_TAG = "aws-chalice"


def drop_version_pins(document: dict[str, Any]) -> None:
    document.pop("terraform", None)
    data = document.get("data", {})
    data.pop("null_data_source", None)


def _stage_free_name(name: str, app_name: str, stage: str) -> str:
    """`<app>-<stage>[-suffix]` as Chalice names things, with the prefix made of variables."""
    prefix = f"{app_name}-{stage}"
    if name != prefix and not name.startswith(prefix + "-"):
        raise ValueError(f"generated name {name!r} does not start with {prefix!r}")
    return NAME_PREFIX + name.removeprefix(prefix)


def name_by_variables(document: dict[str, Any], app_name: str, stage: str) -> None:
    """Every generated name from `var.app_name` and `var.stage`, none from the packaged stage."""
    resources = document["resource"]
    function_names = {}
    for key, function in resources["aws_lambda_function"].items():
        function_names[key] = _stage_free_name(function["function_name"], app_name, stage)
        function["function_name"] = f"${{local.function_names.{key}}}"
        version = _chalice_tag(function)["version"]
        function["tags"][_CHALICE_TAG] = f"version={version}:stage=${{var.stage}}:app={APP_NAME}"
        function["depends_on"] = ["aws_cloudwatch_log_group.functions"]
    document.setdefault("locals", {})["function_names"] = function_names
    for rule in resources.get("aws_cloudwatch_event_rule", {}).values():
        rule["name"] = f"{NAME_PREFIX}-{rule['name'].removesuffix('-event')}"
    for api in resources.get("aws_api_gateway_rest_api", {}).values():
        api["name"] = NAME_PREFIX
    swagger = _swagger(document)
    swagger["info"]["title"] = NAME_PREFIX
    _set_swagger(document, swagger)
    packaged = rf"[\w./:=-]*({re.escape(app_name)}|stage={re.escape(stage)})[\w./:=-]*"
    leftovers = sorted({match.group(0) for match in re.finditer(packaged, _text(document))})
    if leftovers:
        raise ValueError(f"names still carry the packaged app or stage: {', '.join(leftovers)}")


def put_rules_on_custom_bus(document: dict[str, Any]) -> None:
    """Every event pattern's rule and target on the stack's bus; a schedule's stay on the
    default bus, the only one EventBridge runs schedules on."""
    resources = document["resource"]
    scheduled = set()
    for name, rule in resources.get("aws_cloudwatch_event_rule", {}).items():
        if "schedule_expression" in rule:
            scheduled.add(name)
            continue
        rule["event_bus_name"] = EVENT_BUS
    for target in resources.get("aws_cloudwatch_event_target", {}).values():
        if target["rule"] not in {
            f"${{aws_cloudwatch_event_rule.{name}.name}}" for name in scheduled
        }:
            target["event_bus_name"] = EVENT_BUS


def never_lose_events(document: dict[str, Any]) -> None:
    """Each target retries, then dead-letters; so does its function, under its own role.

    EventBridge invokes a function asynchronously: its dead-letter queue catches what it could
    not deliver, and the function's own (after Lambda's two retries) what the handler failed on.
    Both put the event JSON itself in the message body, so one replay recipe drains both.
    """
    resources = document["resource"]
    functions = resources["aws_lambda_function"]
    for target in resources.get("aws_cloudwatch_event_target", {}).values():
        target["retry_policy"] = dict(EVENT_RETRY)
        target["dead_letter_config"] = {"arn": DEAD_LETTER_QUEUE}
        key = _function_key(target["arn"])
        if key not in EVENT_HANDLER_ROLES:
            raise ValueError(f"event handler {key!r} has no role in terraform/iam.tf")
        handler = functions[key]
        handler["role"] = EVENT_HANDLER_ROLES[key]
        handler["dead_letter_config"] = {"target_arn": DEAD_LETTER_QUEUE}


def _function_key(reference: str) -> str:
    match = re.fullmatch(r"\$\{aws_lambda_function\.([\w-]+)\.arn\}", reference)
    if match is None:
        raise ValueError(f"event target {reference!r} is not a function of this file")
    return match.group(1)


def wire_function_environment(document: dict[str, Any]) -> None:
    for function in document["resource"].get("aws_lambda_function", {}).values():
        variables = function.setdefault("environment", {}).setdefault("variables", {})
        variables.update(FUNCTION_ENVIRONMENT)


def require_iam_authorization(document: dict[str, Any]) -> None:
    swagger = _swagger(document)
    swagger.setdefault("securityDefinitions", {}).update(SIGV4_SCHEME)
    for operations in swagger["paths"].values():
        for method, operation in operations.items():
            if method in _HTTP_METHODS:
                operation["security"] = [{"sigv4": []}]
    _set_swagger(document, swagger)


def open_portal_when_deployed(document: dict[str, Any]) -> None:
    """The portal's two GET methods (its files, never data) are authorized by
    `x-amazon-apigateway-auth` with the type `local.portal_authorization` (terraform/portal.tf):
    NONE with `portal = true`, AWS_IAM without it. Every other method keeps its SigV4 security."""
    swagger = _swagger(document)
    for path, method in sorted(PORTAL_ROUTES):
        operation = swagger["paths"].get(path, {}).get(method)
        if operation is None:
            raise ValueError(f"the generated API has no portal route {method.upper()} {path}")
        operation.pop("security", None)
        operation["x-amazon-apigateway-auth"] = dict(PORTAL_AUTHORIZATION)
    _set_swagger(document, swagger)


def open_public_routes(document: dict[str, Any]) -> None:
    """The routes every relying party may call without credentials (a CRL: openssl and TLS
    stacks fetch it from the certificate's CRL Distribution Point, signing nothing) are
    authorized NONE. They serve nothing secret."""
    swagger = _swagger(document)
    for path, method in sorted(PUBLIC_ROUTES):
        operation = swagger["paths"].get(path, {}).get(method)
        if operation is None:
            raise ValueError(f"the generated API has no public route {method.upper()} {path}")
        operation.pop("security", None)
        operation["x-amazon-apigateway-auth"] = {"type": "NONE"}
    _set_swagger(document, swagger)


def merge_portal_environment(document: dict[str, Any]) -> None:
    """The API function's environment, plus the portal's Cognito settings with `portal = true`:
    the variables move to `local.api_function_environment`, merged in Terraform."""
    function = document["resource"]["aws_lambda_function"][API_FUNCTION]
    document["locals"]["api_function_environment"] = function["environment"]["variables"]
    function["environment"]["variables"] = API_FUNCTION_ENVIRONMENT


def allow_binary_responses_for_any_accept(document: dict[str, Any]) -> None:
    """Adds `*/*` to the API's binary media types (the swagger's and the resource's).

    API Gateway (REST API, Lambda proxy integration) returns a body the function marked
    `isBase64Encoded` as bytes only when the request's FIRST Accept media type matches one of the
    binary media types (`*/*` in the list matches any); otherwise the client gets the base64
    text. curl and Python requests send `Accept: */*`, which no concrete type matches, so `*/*`
    must be listed. Chalice marks a response `isBase64Encoded` only when its Content-Type is in
    `app.api.binary_types` (the CRL and PKCS#12 types, kept in the list for the record); JSON is
    never encoded and passes as text whatever the Accept. A side effect: API Gateway then hands
    every request body to the function base64-encoded, which Chalice decodes (`raw_body`).
    """
    swagger = _swagger(document)
    types = swagger.setdefault("x-amazon-apigateway-binary-media-types", [])
    if ANY_MEDIA_TYPE not in types:
        types.append(ANY_MEDIA_TYPE)
    _set_swagger(document, swagger)
    for api in document["resource"]["aws_api_gateway_rest_api"].values():
        api["binary_media_types"] = list(types)


def use_endpoint_type_variable(document: dict[str, Any]) -> None:
    for api in document["resource"]["aws_api_gateway_rest_api"].values():
        api["endpoint_configuration"] = {"types": [ENDPOINT_TYPE]}


def use_stage_resource(document: dict[str, Any]) -> None:
    """AWS provider 5 deprecates the deployment's own stage: declare the stage explicitly."""
    resources = document["resource"]
    deployment = resources["aws_api_gateway_deployment"]["rest_api"]
    stage_name = deployment.pop("stage_name")
    deployment.pop("stage_description", None)
    deployment["triggers"] = {"redeployment": "${md5(local.chalice_api_swagger)}"}
    resources["aws_api_gateway_stage"] = {
        "rest_api": {
            "rest_api_id": "${aws_api_gateway_rest_api.rest_api.id}",
            "deployment_id": "${aws_api_gateway_deployment.rest_api.id}",
            "stage_name": stage_name,
        }
    }
    document["output"]["EndpointURL"] = {"value": "${aws_api_gateway_stage.rest_api.invoke_url}"}


def postprocess(document: dict[str, Any]) -> dict[str, Any]:
    app_name, stage = packaged_app_and_stage(document)
    drop_version_pins(document)
    name_by_variables(document, app_name, stage)
    use_stage_resource(document)
    put_rules_on_custom_bus(document)
    never_lose_events(document)
    wire_function_environment(document)
    merge_portal_environment(document)
    require_iam_authorization(document)
    open_portal_when_deployed(document)
    open_public_routes(document)
    allow_binary_responses_for_any_accept(document)
    use_endpoint_type_variable(document)
    return document


def packaged_app_and_stage(document: dict[str, Any]) -> tuple[str, str]:
    """Chalice tags every function `version=...:stage=<stage>:app=<app>`."""
    for function in document["resource"]["aws_lambda_function"].values():
        tag = _chalice_tag(function)
        return tag["app"], tag["stage"]
    raise ValueError("the generated file has no Lambda function")


def _chalice_tag(function: dict[str, Any]) -> dict[str, str]:
    return dict(part.split("=", 1) for part in function["tags"][_CHALICE_TAG].split(":"))


def _swagger(document: dict[str, Any]) -> dict[str, Any]:
    return json.loads(document["locals"]["chalice_api_swagger"])


def _set_swagger(document: dict[str, Any], swagger: dict[str, Any]) -> None:
    document["locals"]["chalice_api_swagger"] = json.dumps(swagger)


def _text(document: dict[str, Any]) -> str:
    return json.dumps(document)


def chalice_stage_for(stage: str, config: dict[str, Any]) -> str:
    """The Chalice stage whose settings to package for a Terraform stage (see module doc)."""
    settings = config.get("stages", {}).get(stage)
    if settings is not None and settings.get("manage_iam_role") is False:
        return stage
    return DEFAULT_CHALICE_STAGE


def package(directory: Path, stage: str) -> int:
    chalice_stage = chalice_stage_for(stage, json.loads(CHALICE_CONFIG.read_text()))
    chalice = Path(sys.executable).parent / "chalice"
    environment = {"AWS_DEFAULT_REGION": "us-east-1", **os.environ}
    packaged = subprocess.run(
        [str(chalice), "package", "--pkg-format", "terraform", "--stage", chalice_stage,
         str(directory)],
        cwd=PROJECT_ROOT, env=environment, check=False,
    )  # fmt: skip
    if packaged.returncode != 0:
        return packaged.returncode
    postprocess_file(directory / "chalice.tf.json")
    print(
        f"{directory}: packaged with the settings of Chalice stage {chalice_stage!r}; every name "
        f"comes from Terraform: terraform apply -var stage={stage}"
    )
    return 0


def postprocess_file(path: Path) -> None:
    document = postprocess(json.loads(path.read_text()))
    path.write_text(json.dumps(document, indent=2) + "\n")


def stage_name(value: str) -> str:
    """`--stage`: a name Terraform accepts as var.stage, else a usage error (exit status 2)."""
    if not STAGE_NAME.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a stage name: {NAME_RULE}, not ending with a hyphen "
            "(terraform/variables.tf refuses any other var.stage)"
        )
    return value


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.chalice_tf", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    package_command = commands.add_parser("package", help="chalice package, then post-process")
    package_command.add_argument("--stage", type=stage_name, default=DEFAULT_CHALICE_STAGE)
    package_command.add_argument("directory", type=Path)
    postprocess_command = commands.add_parser("postprocess", help="post-process a chalice.tf.json")
    postprocess_command.add_argument("file", type=Path)
    options = parser.parse_args(arguments)
    if options.command == "package":
        return package(options.directory, options.stage)
    postprocess_file(options.file)
    print(f"{options.file}: post-processed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Post-processes the Terraform file that `chalice package --pkg-format terraform` generates.

Chalice 1.x writes a file for Terraform < 1.4 and AWS provider < 5, puts event rules on the
default bus and leaves the API open. This makes it fit the hand-written infrastructure in
terraform/:
- its version pins are removed (terraform/versions.tf holds the constraints: Terraform >= 1.5,
  AWS provider 5.x), and so is the deprecated `null_data_source` (no `hashicorp/null` needed);
- event rules go on the custom bus, named `<app>-<stage>-<handler>` so stages can share an account;
- the functions get the environment that points them at the bucket, table, bus and key;
- every API route requires IAM (SigV4) authorization;
- the API stage is its own resource, as AWS provider 5 wants.

Usage: python -m devtools.chalice_tf terraform/chalice.tf.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

EVENT_BUS = "${aws_cloudwatch_event_bus.certificates.name}"
FUNCTION_ENVIRONMENT = {
    "CERTIFICATE_BUCKET_NAME": "${aws_s3_bucket.certificates.bucket}",
    "INVENTORY_TABLE_NAME": "${aws_dynamodb_table.inventory.name}",
    "INVENTORY_INDEX_NAME": "parent-index",
    "EVENT_BUS_NAME": EVENT_BUS,
    "KMS_KEY_ID": "${aws_kms_key.certificates.arn}",
}
SIGV4_SCHEME = {
    "sigv4": {
        "type": "apiKey",
        "name": "Authorization",
        "in": "header",
        "x-amazon-apigateway-authtype": "awsSigv4",
    }
}
_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def drop_version_pins(document: dict[str, Any]) -> None:
    document.pop("terraform", None)
    data = document.get("data", {})
    data.pop("null_data_source", None)


def put_rules_on_custom_bus(document: dict[str, Any], app_name: str, stage: str) -> None:
    resources = document["resource"]
    for rule in resources.get("aws_cloudwatch_event_rule", {}).values():
        rule["event_bus_name"] = EVENT_BUS
        rule["name"] = f"{app_name}-{stage}-{rule['name'].removesuffix('-event')}"
    for target in resources.get("aws_cloudwatch_event_target", {}).values():
        target["event_bus_name"] = EVENT_BUS


def wire_function_environment(document: dict[str, Any]) -> None:
    for function in document["resource"].get("aws_lambda_function", {}).values():
        variables = function.setdefault("environment", {}).setdefault("variables", {})
        variables.update(FUNCTION_ENVIRONMENT)


def require_iam_authorization(document: dict[str, Any]) -> None:
    swagger = json.loads(document["locals"]["chalice_api_swagger"])
    swagger.setdefault("securityDefinitions", {}).update(SIGV4_SCHEME)
    for operations in swagger["paths"].values():
        for method, operation in operations.items():
            if method in _HTTP_METHODS:
                operation["security"] = [{"sigv4": []}]
    document["locals"]["chalice_api_swagger"] = json.dumps(swagger)


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


def postprocess(document: dict[str, Any], app_name: str, stage: str) -> dict[str, Any]:
    drop_version_pins(document)
    use_stage_resource(document)
    put_rules_on_custom_bus(document, app_name, stage)
    wire_function_environment(document)
    require_iam_authorization(document)
    return document


def _app_and_stage(document: dict[str, Any]) -> tuple[str, str]:
    """Chalice tags every function `version=...:stage=<stage>:app=<app>`."""
    for function in document["resource"]["aws_lambda_function"].values():
        tag = dict(part.split("=", 1) for part in function["tags"]["aws-chalice"].split(":"))
        return tag["app"], tag["stage"]
    raise ValueError("the generated file has no Lambda function")


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(arguments[0])
    document = json.loads(path.read_text())
    app_name, stage = _app_and_stage(document)
    path.write_text(json.dumps(postprocess(document, app_name, stage), indent=2) + "\n")
    print(f"{path}: post-processed for app {app_name}, stage {stage}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

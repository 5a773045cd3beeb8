"""Terraform: the packaged module validates, and plans against a local moto server.

Needs the `terraform` binary and the AWS provider 5.x (from TF_PLUGIN_DIR, a local provider mirror,
or the registry); each test skips with the reason when they are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from chalicelib.events import INVENTORY_EVENT_PATTERN
from tests.conftest import PROJECT_ROOT, free_port

TERRAFORM = shutil.which("terraform")
PLUGIN_DIR = os.environ.get("TF_PLUGIN_DIR") or (
    "/opt/tf-plugins" if Path("/opt/tf-plugins").is_dir() else ""
)
pytestmark = pytest.mark.skipif(TERRAFORM is None, reason="terraform is not installed")


def _run(arguments: list[str], cwd: Path, **options: Any) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1")
    environment.update(options.pop("env", {}))
    return subprocess.run(
        arguments, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600,
        check=False, **options,
    )  # fmt: skip


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package` into a scratch copy of terraform/, then `terraform init`."""
    directory = tmp_path_factory.mktemp("terraform")
    for source in (PROJECT_ROOT / "terraform").glob("*.tf"):
        shutil.copy(source, directory)
    chalice = Path(sys.executable).parent / "chalice"
    packaged = _run(
        [str(chalice), "package", "--pkg-format", "terraform", "--stage", "dev", str(directory)],
        cwd=PROJECT_ROOT, env={"AWS_DEFAULT_REGION": "us-east-1"},
    )  # fmt: skip
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr
    processed = _run(
        [sys.executable, "-m", "devtools.chalice_tf", str(directory / "chalice.tf.json")],
        cwd=PROJECT_ROOT,
    )
    assert processed.returncode == 0, processed.stderr
    init = [TERRAFORM, "init", "-backend=false", "-input=false", "-no-color"]
    if PLUGIN_DIR:
        init.append(f"-plugin-dir={PLUGIN_DIR}")
    initialised = _run(init, cwd=directory)
    if initialised.returncode != 0:
        pytest.skip(f"terraform init failed (no AWS provider 5.x available): {initialised.stderr}")
    return directory


def test_the_packaged_module_validates(packaged: Path) -> None:
    result = _run([TERRAFORM, "validate", "-no-color", "-json"], cwd=packaged)
    report = json.loads(result.stdout)
    assert report["valid"], report
    assert report["warning_count"] == 0, report["diagnostics"]


def test_hand_written_files_are_formatted() -> None:
    result = _run(
        [TERRAFORM, "fmt", "-check", "-diff", "-no-color"], cwd=PROJECT_ROOT / "terraform"
    )
    assert result.returncode == 0, result.stdout


_SERVICES = ("s3", "dynamodb", "sts", "iam", "kms", "events", "lambda", "apigateway", "logs", "acm")


@pytest.fixture
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _planned_resources(module: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {resource["address"]: resource for resource in module.get("resources", [])}


def test_plan_against_moto_creates_the_stack(packaged: Path, moto_endpoint: str) -> None:
    endpoints = "\n".join(f'    {name} = "{moto_endpoint}"' for name in _SERVICES)
    (packaged / "moto_override.tf").write_text(
        'provider "aws" {\n'
        '  region                      = "us-east-1"\n'
        '  access_key                  = "testing"\n'
        '  secret_key                  = "testing"\n'
        "  skip_credentials_validation = true\n"
        "  skip_metadata_api_check     = true\n"
        "  skip_requesting_account_id  = true\n"
        "  s3_use_path_style           = true\n"
        f"  endpoints {{\n{endpoints}\n  }}\n"
        "}\n"
    )
    try:
        planned = _run(
            [TERRAFORM, "plan", "-input=false", "-no-color", "-out=plan.bin",
             "-var=region=us-east-1"],
            cwd=packaged,
        )  # fmt: skip
        assert planned.returncode == 0, planned.stdout + planned.stderr
        shown = _run([TERRAFORM, "show", "-json", "plan.bin"], cwd=packaged)
    finally:
        (packaged / "moto_override.tf").unlink()
    plan = json.loads(shown.stdout)
    resources = _planned_resources(plan["planned_values"]["root_module"])
    configuration = _planned_resources(plan["configuration"]["root_module"])

    versioning = resources["aws_s3_bucket_versioning.certificates"]["values"]
    assert versioning["versioning_configuration"][0]["status"] == "Enabled"
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

    table = resources["aws_dynamodb_table.inventory"]["values"]
    assert (table["hash_key"], table["range_key"], table["billing_mode"]) == (
        "FQDN", "ParentFQDN", "PAY_PER_REQUEST",
    )  # fmt: skip
    [index] = table["global_secondary_index"]
    assert (index["name"], index["hash_key"], index["range_key"]) == (
        "parent-index", "ParentFQDN", "FQDN",
    )  # fmt: skip
    assert index["projection_type"] == "ALL"
    assert table["point_in_time_recovery"][0]["enabled"] is True

    bus = resources["aws_cloudwatch_event_bus.certificates"]["values"]
    rule = resources["aws_cloudwatch_event_rule.record_inventory-event"]["values"]
    target = resources["aws_cloudwatch_event_target.record_inventory-event"]["values"]
    assert rule["event_bus_name"] == bus["name"] == target["event_bus_name"]
    assert json.loads(rule["event_pattern"]) == INVENTORY_EVENT_PATTERN
    target_config = configuration["aws_cloudwatch_event_target.record_inventory-event"]
    assert "aws_lambda_function.record_inventory" in json.dumps(target_config["expressions"])
    assert resources["aws_kms_key.certificates"]["values"]["enable_key_rotation"] is True

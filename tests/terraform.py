"""Terraform for the tests: `make package STAGE=...` into a scratch copy of terraform/ with its
lock file, initialised from TF_PLUGIN_DIR or /opt/tf-plugins (a local provider mirror) or else the
registry, and run with a provider override that points every service at a moto server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import PROJECT_ROOT

TERRAFORM = shutil.which("terraform")
PLUGIN_DIR = os.environ.get("TF_PLUGIN_DIR") or (
    "/opt/tf-plugins" if Path("/opt/tf-plugins").is_dir() else ""
)
LOCK_FILE = ".terraform.lock.hcl"
REGION = "us-east-1"
API_GATEWAY_TIMEOUT_SECONDS = 29

_SERVICES = (
    "s3", "dynamodb", "sts", "iam", "kms", "events", "lambda", "apigateway", "logs", "acm", "sqs",
    "cloudwatch", "cognitoidp", "cognitoidentity", "iot", "sns",
)  # fmt: skip


def run(
    arguments: list[str], cwd: Path, environment: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    merged = dict(os.environ, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", **(environment or {}))
    return subprocess.run(
        arguments, cwd=cwd, env=merged, capture_output=True, text=True, timeout=600, check=False
    )


def package(directory: Path, stage: str) -> None:
    """`make package STAGE=<stage>` into `directory`, as an engineer runs it into terraform/."""
    packaged = run(["make", "-s", "package", f"STAGE={stage}", f"TF_DIR={directory}"], PROJECT_ROOT)
    assert packaged.returncode == 0, packaged.stdout + packaged.stderr


@dataclass
class Module:
    """A scratch copy of terraform/ (with the lock file), packaged and initialised."""

    directory: Path

    def terraform(
        self, *arguments: str, workspace: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        environment = {"TF_WORKSPACE": workspace} if workspace else {}
        return run([str(TERRAFORM), *arguments], self.directory, environment)

    def point_at(self, endpoint: str, max_retries: int = 25) -> None:
        """A provider override: every service at `endpoint` (moto), fake credentials."""
        endpoints = "\n".join(f'    {name} = "{endpoint}"' for name in _SERVICES)
        (self.directory / "moto_override.tf").write_text(
            'provider "aws" {\n'
            f'  region                      = "{REGION}"\n'
            f"  max_retries                 = {max_retries}\n"
            '  access_key                  = "testing"\n'
            '  secret_key                  = "testing"\n'
            "  skip_credentials_validation = true\n"
            "  skip_metadata_api_check     = true\n"
            "  skip_requesting_account_id  = true\n"
            "  s3_use_path_style           = true\n"
            f"  endpoints {{\n{endpoints}\n  }}\n"
            "}\n"
        )

    def generated(self) -> dict[str, Any]:
        return json.loads((self.directory / "chalice.tf.json").read_text())


def packaged_module(directory: Path, stage: str) -> Module:
    for source in (PROJECT_ROOT / "terraform").glob("*.tf"):
        shutil.copy(source, directory)
    shutil.copy(PROJECT_ROOT / "terraform" / LOCK_FILE, directory)
    package(directory, stage)
    module = Module(directory)
    init = ["init", "-backend=false", "-input=false", "-no-color"]
    initialised = module.terraform(*init, *([f"-plugin-dir={PLUGIN_DIR}"] if PLUGIN_DIR else []))
    if not PLUGIN_DIR and initialised.returncode != 0:
        pytest.skip(f"no provider mirror and the registry failed: {initialised.stderr}")
    assert initialised.returncode == 0, initialised.stdout + initialised.stderr
    return module

"""Who owns what the service creates in AWS: the app and the stage.

Stages share a dev account, and AWS IoT and ACM are account-wide: a CA registered by Alice's stage
sits beside Bob's. Everything the service creates there carries its app and stage (tags on CA
registrations and ACM imports, attributes on things), so that a stage's resources are found, and
torn down, by what they carry and never by a name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

APP_KEY = "app"
STAGE_KEY = "stage"
DEFAULT_APP = "iot-cert-service"
LOCAL_STAGE = "local"
"""The stage of a service that Terraform did not deploy (`make run-moto`, tests)."""
NAME_PATTERN = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")
"""What terraform/variables.tf accepts for `app_name` and `stage` (its very pattern, which a test
compares); every tag value and thing attribute AWS takes also accepts it."""
NAME_RULE = "lowercase letters, digits and hyphens, starting with a letter"


@dataclass(frozen=True)
class Ownership:
    app: str
    stage: str

    def labels(self) -> dict[str, str]:
        """The tags (and thing attributes) that name the owner."""
        return {APP_KEY: self.app, STAGE_KEY: self.stage}

    def tags(self) -> list[dict[str, str]]:
        """`labels` as AWS's tag lists (`[{"Key": ..., "Value": ...}]`)."""
        return [{"Key": key, "Value": value} for key, value in self.labels().items()]

    def owns(self, labels: dict[str, str]) -> bool:
        """Whether tags or attributes (as a dict) name this owner."""
        return all(labels.get(key) == value for key, value in self.labels().items())


def is_valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None

"""Small helpers shared by the AWS adapters. botocore is imported lazily: the local backend
never loads it, which keeps `chalice local` and the local stage's cold start light."""

from __future__ import annotations

from typing import Any


def aws_error_code(error: Exception) -> str | None:
    """The AWS error code of a botocore ClientError (None for any other exception)."""
    response: Any = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    return response.get("Error", {}).get("Code")


def aws_errors() -> tuple[type[Exception], ...]:
    """What a failed boto3 call raises: ClientError (an AWS answer) or another BotoCoreError
    (no answer: connection, credentials, ...). For `except aws_errors() as err:`."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)

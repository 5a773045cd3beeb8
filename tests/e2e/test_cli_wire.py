"""iotcert in process against a small recording HTTP server: what goes on the wire (a Bearer
token, a SigV4 signature, a bundle password in its header only), as the server sees it."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import urllib.parse
from pathlib import Path

import pytest

from iotcert.cli import main
from tests.helpers import ACCESS_KEY, SECRET_KEY, SESSION_TOKEN
from tests.servers import Received, RecordingServer


def _expected_signature(request: Received, signed_headers: list[str], scope: str) -> str:
    """AWS Signature Version 4 of the request as received, computed from the specification."""
    path, _, query = request.target.partition("?")
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    canonical_query = "&".join(
        sorted(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
               for k, v in pairs)
    )  # fmt: skip
    canonical_headers = "".join(
        f"{name}:{' '.join(request.headers[name].split())}\n" for name in signed_headers
    )
    canonical_request = "\n".join([
        request.method, urllib.parse.quote(path, safe="/-_.~"), canonical_query,
        canonical_headers, ";".join(signed_headers), hashlib.sha256(request.body).hexdigest(),
    ])  # fmt: skip
    string_to_sign = "\n".join([
        "AWS4-HMAC-SHA256", request.headers["x-amz-date"], scope,
        hashlib.sha256(canonical_request.encode()).hexdigest(),
    ])  # fmt: skip
    key = f"AWS4{SECRET_KEY}".encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


@dataclasses.dataclass(frozen=True)
class Signature:
    access_key: str
    scope: str
    signed_headers: list[str]
    signature: str


def _signature(request: Received) -> Signature:
    algorithm, _, fields = request.headers["authorization"].partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    parts = dict(field.strip().split("=", 1) for field in fields.split(","))
    access_key, scope = parts["Credential"].split("/", 1)
    return Signature(access_key, scope, parts["SignedHeaders"].split(";"), parts["Signature"])


@pytest.mark.usefixtures("aws_credentials")
def test_sigv4_signs_exactly_what_is_sent(recorder: RecordingServer) -> None:
    signing = ["--sigv4", "--region", "eu-central-1"]
    assert (
        main(["--api", recorder.url, *signing, "list", "--status", "active", "--limit", "5"]) == 0
    )
    assert main(["--api", recorder.url, "revoke", "dev.example.com", "--reason", "superseded",
                 *signing]) == 0  # fmt: skip
    listing, revocation = recorder.received
    assert listing.target == "/certificates?status=active&limit=5"
    assert revocation.body == b'{"reason": "superseded"}'
    for request in (listing, revocation):
        signed = _signature(request)
        assert signed.access_key == ACCESS_KEY
        date = request.headers["x-amz-date"][:8]
        assert signed.scope == f"{date}/eu-central-1/execute-api/aws4_request"
        assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed.signed_headers)
        assert request.headers["x-amz-security-token"] == SESSION_TOKEN
        assert signed.signature == _expected_signature(request, signed.signed_headers, signed.scope)
    # The check above can fail: another body has another signature.
    signed = _signature(revocation)
    tampered = dataclasses.replace(revocation, body=b'{"reason": "keyCompromise"}')
    assert signed.signature != _expected_signature(tampered, signed.signed_headers, signed.scope)


def test_sigv4_without_credentials_or_region_says_what_is_missing(
    recorder: RecordingServer,
    aws_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--api", recorder.url, "--sigv4", "--region", "eu-central-1", "list"]) == 1
    assert "SigV4 signing needs AWS credentials" in capsys.readouterr().err
    aws_environment.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    assert main(["--api", recorder.url, "--sigv4", "list"]) == 1
    assert "SigV4 signing needs a region: give --region or set AWS_REGION" in (
        capsys.readouterr().err
    )
    aws_environment.setenv("AWS_REGION", "ap-south-1")
    assert main(["--api", recorder.url, "--sigv4", "list"]) == 0
    assert "/ap-south-1/execute-api/" in recorder.received[0].headers["authorization"]


def test_bearer_token_only_when_iotcert_token_is_set(
    recorder: RecordingServer, aws_environment: pytest.MonkeyPatch
) -> None:
    assert main(["--api", recorder.url, "list"]) == 0
    aws_environment.setenv("IOTCERT_TOKEN", "token-5f2b9c")
    assert main(["--api", recorder.url, "list"]) == 0
    unauthenticated, authenticated = recorder.received
    assert "authorization" not in unauthenticated.headers
    assert authenticated.headers["authorization"] == "Bearer token-5f2b9c"


def test_the_bundle_password_travels_in_its_header_only(
    recorder: RecordingServer, aws_environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_environment.setenv("IOTCERT_BUNDLE_PASSWORD", "bundle-password-77ad")
    output = tmp_path / "dev.p12"
    argv = ["--api", recorder.url, "bundle", "dev.example.com", "--format", "pkcs12"]
    assert main([*argv, "-o", str(output)]) == 0
    assert main([*argv, "--password", "given-on-the-line", "-o", str(output)]) == 0
    from_environment, from_option = recorder.received
    assert from_environment.target == "/certificates/dev.example.com/bundle?format=pkcs12"
    assert from_environment.headers["x-bundle-password"] == "bundle-password-77ad"
    assert from_option.target == from_environment.target
    assert from_option.headers["x-bundle-password"] == "given-on-the-line"
    assert output.stat().st_mode & 0o777 == 0o600


def test_json_may_come_before_or_after_the_command(
    recorder: RecordingServer,
    aws_environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--json", "--api", recorder.url, "list"]) == 0
    before = capsys.readouterr().out
    assert main(["list", "--json", "--api", recorder.url]) == 0
    assert json.loads(before) == json.loads(capsys.readouterr().out)
    assert json.loads(before) == {"items": [], "next_token": None}
    assert main(["list", "--api", recorder.url]) == 0
    assert capsys.readouterr().out == "no certificates\n"


@pytest.mark.usefixtures("aws_environment")
def test_aws_iot_registration_always_says_whether_to_make_the_thing(
    recorder: RecordingServer,
) -> None:
    """The API refuses `register` without `thing` (such a certificate cannot connect): each
    choice of --aws-iot sends both."""
    argv = ["--api", recorder.url, "--json", "create", "device", "--parent", "cell.example.com"]
    assert main([*argv, "--aws-iot", "thing"]) == 0
    assert main([*argv, "--aws-iot", "certificate-only"]) == 0
    bodies = [json.loads(request.body)["aws_iot"] for request in recorder.received]
    assert bodies == [{"register": True, "thing": True}, {"register": True, "thing": False}]

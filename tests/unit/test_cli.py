"""iotcert in process: every command's help, usage errors, and what goes on the wire (a Bearer
token, a SigV4 signature, a bundle password in its header only), as a small HTTP server sees it."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from iotcert.cli import build_parser, main
from iotcert.client import CliError, SigV4, connect

COMMON = ["--api", "--json", "--sigv4", "--region"]
COMMAND_OPTIONS: dict[tuple[str, ...], list[str]] = {
    (): ["create", "list", "tree", "files", "IOTCERT_API", "IOTCERT_TOKEN", "--api", "--json"],
    ("create",): ["root", "intermediate", "server", "device"],
    ("create", "root"): ["FQDN", "--country", "--state", "--organization", "--validity-days",
                         "--key-type", "--out-dir"],
    ("create", "intermediate"): ["FQDN", "--parent", "--path-length", "--key-type", "--out-dir"],
    ("create", "server"): ["FQDN", "--parent", "--san", "--csr", "--validity-days", "--out-dir"],
    ("create", "device"): ["--parent", "--count", "--csr", "ED25519", "--aws-iot", "--out-dir"],
    ("list",): ["--parent", "--expiring-within-days", "--status", "--limit", "--page-size"],
    ("show",): ["FQDN", "--serial"],
    ("history",): ["FQDN"],
    ("tree",): ["CA", "--leaves"],
    ("renew",): ["FQDN", "--validity-days", "--key-type", "--csr", "--reuse-key",
                 "--revoke-previous", "--serial", "--out-dir"],
    ("revoke",): ["FQDN", "--reason", "keyCompromise"],
    ("crl",): ["CA", "--format", "der", "pem", "--output"],
    ("bundle",): ["FQDN", "--format", "fullchain", "pkcs12", "--password",
                  "IOTCERT_BUNDLE_PASSWORD", "X-Bundle-Password", "--serial", "--output"],
    ("private-key",): ["FQDN", "--serial", "--output"],
    ("files",): ["FQDN", "DIR", "cert.pem", "chain.pem", "fullchain.pem", "key.pem", "ca.pem",
                 "--serial"],
    ("aws-iot",): ["verification-certificate", "register"],
    ("aws-iot", "verification-certificate"): ["CA", "CODE"],
    ("aws-iot", "register"): ["CA", "--mode", "SNI_ONLY", "--provisioning", "jitp",
                              "--no-auto-registration"],
}  # fmt: skip
UNSET = ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
         "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "IOTCERT_TOKEN", "IOTCERT_API",
         "IOTCERT_BUNDLE_PASSWORD")  # fmt: skip
ACCESS_KEY, SECRET_KEY, SESSION_TOKEN = "AKIDEXAMPLE", "secret-key-example", "session-token-example"


def _commands(
    parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()
) -> set[tuple[str, ...]]:
    found = {prefix}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                found |= _commands(subparser, (*prefix, name))
    return found


def test_every_command_has_its_help_checked() -> None:
    assert _commands(build_parser()) == set(COMMAND_OPTIONS)


@pytest.mark.parametrize("command", sorted(COMMAND_OPTIONS), ids=" ".join)
def test_help_names_every_option(
    command: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    leaf = command not in ((), ("create",), ("aws-iot",))
    for option in COMMAND_OPTIONS[command] + (COMMON if leaf else []):
        assert option in shown, f"{option} missing from `iotcert {' '.join(command)} --help`"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["create"], "the following arguments are required: KIND"),
        (["create", "device"], "the following arguments are required: --parent"),
        (["list", "--limit", "0"], "'0' is not a whole number of at least 1"),
        (["revoke", "a.example.com", "--reason", "lost"], "invalid choice: 'lost'"),
        (["crl", "ca.example.com", "--format", "p7b"], "invalid choice: 'p7b'"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


@dataclasses.dataclass(frozen=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class _Recorder(BaseHTTPRequestHandler):
    """Records each request; answers an empty listing or a small certificate."""

    server: RecordingServer

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.received.append(Received(self.command, self.path, headers, body))
        listing = urllib.parse.urlsplit(self.path).path == "/certificates"
        reply = {"items": [], "next_token": None} if listing else {"fqdn": "dev.example.com"}
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


class RecordingServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.received: list[Received] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[RecordingServer]:
    server = RecordingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS settings of the machine's: no profile, no region, no instance metadata."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def aws_credentials(aws_environment: pytest.MonkeyPatch) -> None:
    aws_environment.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    aws_environment.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    aws_environment.setenv("AWS_SESSION_TOKEN", SESSION_TOKEN)


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


def test_an_api_gateway_url_is_signed_for_its_own_region(aws_credentials: None) -> None:
    assert SigV4("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/api", None).region == (
        "eu-west-1"
    )
    assert SigV4("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com", "us-east-2").region == (
        "us-east-2"
    )
    # Signing is chosen by the URL alone; a Bearer token would then clash with it.
    with pytest.raises(CliError, match="signed with SigV4"):
        connect("https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/api", token="t")
    assert connect("http://127.0.0.1:8000", token="t").base_url == "http://127.0.0.1:8000"


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

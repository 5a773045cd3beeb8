"""iotcert in process, with no server: every command's help, usage errors, and which region a
SigV4 signature is for. What goes on the wire is in tests/e2e/test_cli_wire.py."""

from __future__ import annotations

import argparse

import pytest

from iotcert.cli import build_parser, main
from iotcert.client import CliError, SigV4, connect

COMMON = ["--api", "--json", "--sigv4", "--region"]
COMMAND_OPTIONS: dict[tuple[str, ...], list[str]] = {
    (): ["create", "list", "tree", "files", "IOTCERT_API", "IOTCERT_TOKEN", "--api", "--json"],
    ("create",): ["root", "intermediate", "server", "device"],
    ("create", "root"): ["FQDN", "--country", "--state", "--organization", "--validity-days",
                         "--key-type", "--key-store", "--out-dir"],
    ("create", "intermediate"): ["FQDN", "--parent", "--path-length", "--key-type", "--key-store",
                                 "--out-dir"],
    ("create", "server"): ["FQDN", "--parent", "--san", "--csr", "--validity-days", "--out-dir"],
    ("create", "device"): ["--parent", "--count", "--csr", "ED25519", "--aws-iot", "thing",
                           "certificate-only", "--out-dir"],
    ("list",): ["--parent", "--expiring-within-days", "--status", "--limit", "--page-size"],
    ("show",): ["FQDN", "--serial"],
    ("history",): ["FQDN"],
    ("tree",): ["CA", "--leaves"],
    ("expiring",): ["--within-days", "--limit", "soonest first"],
    ("agent",): ["FQDN", "DIR", "--renew-at", "--exec", "--once", "--key-on-device", "SIGTERM"],
    ("renew",): ["FQDN", "--validity-days", "--key-type", "--csr", "--reuse-key",
                 "--revoke-previous", "--serial", "--out-dir"],
    ("revoke",): ["FQDN", "--reason", "keyCompromise"],
    ("delete",): ["FQDN", "--cascade", "revoked", "CRL"],
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
        (
            ["create", "device", "--parent", "c.example", "--aws-iot", "register"],
            "invalid choice: 'register' (choose from 'thing', 'certificate-only')",
        ),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert complaint in capsys.readouterr().err


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

"""`iotcert`: the command line of iot-cert-service, over its HTTP API.

argparse (standard library): no extra dependency for a client that ships with the service.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from iotcert.client import DEFAULT_API, ApiError, CliError, connect
from iotcert.parsers import COMMANDS, CommandParser

DESCRIPTION = """\
Issue and fetch certificates from iot-cert-service: root and intermediate CAs, broker (server)
and device certificates, renewals, revocations, CRLs, and the PEM files a broker or device loads."""
EPILOG = f"""\
environment:
  IOTCERT_API              the service's URL (default {DEFAULT_API}; --api overrides)
  IOTCERT_TOKEN            sent as `Authorization: Bearer ...` (the server's API_TOKEN)
  IOTCERT_BUNDLE_PASSWORD  the password of pkcs12 bundles (bundle --password overrides)
  AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, ...  credentials and region for SigV4

SigV4 signing is automatic for https://<id>.execute-api.<region>.amazonaws.com URLs.
Exit status: 0 success, 1 an error from the service or the network, 2 a usage error.

example:
  iotcert create root example.com --organization "Example IoT"
  iotcert create intermediate devices.example.com --path-length 1
  iotcert create intermediate cell1.devices.example.com
  iotcert create device --parent cell1.devices.example.com --out-dir device
  iotcert tree"""


def _connection_options(parser: argparse.ArgumentParser, top_level: bool) -> None:
    """On the top level with their defaults, and on every command (defaults suppressed, so that
    a value given before the command stands): `iotcert list --json` works as `iotcert --json list`.
    """

    def default(value: object) -> object:
        return value if top_level else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output (before or after the command)")
    api = os.environ.get("IOTCERT_API") or DEFAULT_API
    group.add_argument(
        "--api", metavar="URL", default=default(api), help=f"the service (default: {api})"
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print the service's JSON"
    )
    group.add_argument(
        "--sigv4",
        action="store_true",
        default=default(False),
        help="sign with AWS SigV4 (automatic for *.execute-api.<region>.amazonaws.com)",
    )
    group.add_argument(
        "--region",
        default=default(None),
        help="AWS region for SigV4 (default: the URL's, AWS_REGION or the AWS profile's)",
    )


def version() -> str:
    try:
        return metadata.version("iot-cert-service")
    except metadata.PackageNotFoundError:  # run from a checkout without `pip install`
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotcert",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"iotcert {version()}")
    _connection_options(parser, top_level=True)
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", required=True, parser_class=CommandParser
    )
    for add in COMMANDS:
        for command in add(subparsers):
            _connection_options(command, top_level=False)
            flags = dict(command.flags)
            positional = flags.get("fqdn") or flags.get("ca")  # in the URL: "certificate"
            if positional is not None:
                flags.setdefault("certificate", positional)
            command.set_defaults(cli_flags=flags, parser=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.json and not getattr(args, "json_output", True):
        args.parser.error("--json: this command writes its file as it is, not JSON")
    try:
        client = connect(
            args.api,
            sigv4=args.sigv4,
            region=args.region,
            token=os.environ.get("IOTCERT_TOKEN") or None,
        )
        args.handler(client, args)
    except ApiError as err:
        print(f"iotcert: {err.in_cli_terms(args.cli_flags)}", file=sys.stderr)
        return 1
    except CliError as err:
        print(f"iotcert: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader left early (`iotcert list | head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0

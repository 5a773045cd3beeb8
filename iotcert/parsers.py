"""The commands' arguments: every field of every request body and query of the API.

argparse, as the rest of the command line (see iotcert.cli).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

from iotcert import agent as agent_command
from iotcert import commands

KEY_TYPES = ("EC_P256", "EC_P384", "RSA_2048", "RSA_3072", "RSA_4096")
KEY_STORES = ("file", "kms", "pkcs11")
REVOCATION_REASONS = (
    "unspecified", "keyCompromise", "cACompromise", "affiliationChanged", "superseded",
    "cessationOfOperation", "certificateHold", "privilegeWithdrawn", "aACompromise",
)  # fmt: skip


def _positive(text: str) -> int:
    return _number(text, 1)


def _whole(text: str) -> int:
    return _number(text, 0)


def _number(text: str, low: int) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < low:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {low}")
    return int(text)


class CommandParser(argparse.ArgumentParser):
    """A command's parser, which keeps each argument's option by its destination (the API's
    field): errors of the service are then worded with the command's own options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.flags: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        name = action.option_strings[-1] if action.option_strings else str(action.metavar)
        self.flags.setdefault(action.dest, name)
        return action


Subparsers = argparse._SubParsersAction  # the type add_subparsers() returns


def _command(
    subparsers: Subparsers[CommandParser],
    name: str,
    handler: Callable[..., None],
    summary: str,
    description: str = "",
) -> CommandParser:
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}. {description}".strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def _subject_options(parser: argparse.ArgumentParser, key_types: Sequence[str]) -> None:
    parser.add_argument("--country", metavar="CC", help="two-letter country of the subject")
    parser.add_argument("--state", help="state or province of the subject")
    parser.add_argument("--organization", help="organization of the subject")
    parser.add_argument(
        "--validity-days",
        type=_positive,
        metavar="DAYS",
        help="lifetime (default: root 3650, intermediate 1825, server 397, device 365)",
    )
    parser.add_argument("--key-type", choices=key_types, help="default EC_P256")


def _out_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out-dir",
        metavar="DIR",
        help="also write cert.pem, chain.pem, fullchain.pem, key.pem and ca.pem into DIR "
        "(a bulk: DIR/<fqdn>/ per device)",
    )


def _key_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--key-store",
        choices=KEY_STORES,
        help="where the CA's key is made and kept: file, kms (AWS) or pkcs11 (a local PKCS#11 "
        "token); default: the service's CA_KEY_STORE",
    )


def add_create(subparsers: Subparsers[CommandParser]) -> list[CommandParser]:
    create = subparsers.add_parser(
        "create",
        help="issue a CA, server or device certificate",
        description="Issue a root CA, an intermediate CA, a server or device certificate.",
    )
    kinds = create.add_subparsers(title="kinds", metavar="KIND", dest="kind", required=True)
    root = _command(kinds, "root", commands.create, "create a self-signed root CA")
    root.add_argument("fqdn", metavar="FQDN", help="the root's name, e.g. example.com")
    _subject_options(root, KEY_TYPES)
    _key_store_option(root)
    _out_dir_option(root)
    return [root, _add_intermediate(kinds), _add_server(kinds), _add_device(kinds)]


def _add_intermediate(kinds: Subparsers[CommandParser]) -> CommandParser:
    intermediate = _command(
        kinds, "intermediate", commands.create, "create an intermediate CA under another CA"
    )
    intermediate.add_argument("fqdn", metavar="FQDN", help="its name, under its parent's")
    intermediate.add_argument(
        "--parent",
        dest="parent_fqdn",
        metavar="CA",
        help="the issuing CA (default: the closest existing CA above FQDN)",
    )
    intermediate.add_argument(
        "--path-length",
        type=_whole,
        metavar="N",
        help="CA levels allowed below it: 0-8 (default 0: it issues only leaves)",
    )
    _subject_options(intermediate, KEY_TYPES)
    _key_store_option(intermediate)
    _out_dir_option(intermediate)
    return intermediate


def _add_server(kinds: Subparsers[CommandParser]) -> CommandParser:
    server = _command(kinds, "server", commands.create, "create a server (broker) certificate")
    server.add_argument("fqdn", metavar="FQDN", help="its DNS name, under its parent CA's")
    server.add_argument(
        "--parent",
        dest="parent_fqdn",
        metavar="CA",
        help="the issuing CA (default: the closest existing CA above FQDN)",
    )
    server.add_argument(
        "--san",
        dest="sans",
        action="append",
        metavar="NAME",
        help="another DNS name or IP address it serves (repeat for more)",
    )
    server.add_argument("--csr", metavar="FILE", help="PEM CSR: its own key instead of a new one")
    _subject_options(server, KEY_TYPES)
    _out_dir_option(server)
    return server


def _add_device(kinds: Subparsers[CommandParser]) -> CommandParser:
    device = _command(
        kinds,
        "device",
        commands.create,
        "create device (client) certificates",
        "Each is named <uuid4>.<parent>; its subject CN is the UUID.",
    )
    device.add_argument(
        "--parent", dest="parent_fqdn", metavar="CA", required=True, help="the issuing CA"
    )
    device.add_argument("--count", type=_positive, metavar="N", help="issue N devices at once")
    device.add_argument(
        "--aws-iot",
        dest="aws_iot",
        choices=tuple(commands.AWS_IOT_BODIES),
        help="AWS backend: register each device with AWS IoT and make its thing (thing), or "
        "register its certificate alone (certificate-only), which cannot connect until you "
        "attach it to a thing",
    )
    device.add_argument(
        "--csr",
        action="append",
        metavar="FILE",
        help="PEM CSR: the device's own key; repeat for one device per CSR",
    )
    _subject_options(device, (*KEY_TYPES, "ED25519"))
    _out_dir_option(device)
    return device


def add_queries(subparsers: Subparsers[CommandParser]) -> list[CommandParser]:
    listing = _command(
        subparsers,
        "list",
        commands.list_certificates,
        "list root CAs, or what a CA issued",
        "Follows the pages to the end unless --limit caps the total.",
    )
    listing.add_argument("--parent", metavar="CA", help="list what CA issued (default: roots)")
    listing.add_argument(
        "--expiring-within-days",
        type=_whole,
        metavar="DAYS",
        help="only those expiring within DAYS (expired ones included); without --parent, "
        "the whole fleet's, as `iotcert expiring`",
    )
    listing.add_argument("--status", choices=("active", "revoked"))
    listing.add_argument("--limit", type=_positive, metavar="N", help="at most N certificates")
    listing.add_argument(
        "--page-size",
        type=_positive,
        default=commands.MAX_PAGE,
        metavar="N",
        help=f"certificates per request: 1-{commands.MAX_PAGE} (default {commands.MAX_PAGE})",
    )
    show = _command(
        subparsers, "show", commands.show, "show one certificate (the current generation)"
    )
    show.add_argument("fqdn", metavar="FQDN")
    show.add_argument("--serial", metavar="HEX", help="the generation with this serial")
    history = _command(
        subparsers, "history", commands.history, "list every generation of a certificate"
    )
    history.add_argument("fqdn", metavar="FQDN")
    tree = _command(
        subparsers,
        "tree",
        commands.tree,
        "show the CA hierarchy from the roots down",
        "Each CA with what it issued; servers and devices are counted, or listed with --leaves.",
    )
    tree.add_argument("ca", metavar="CA", nargs="?", help="start at this CA (default: all roots)")
    tree.add_argument("--leaves", action="store_true", help="list servers and devices too")
    expiring = _command(
        subparsers,
        "expiring",
        commands.expiring,
        "list the active certificates of every CA that expire soon, soonest first",
        "Follows the pages to the end unless --limit caps the total.",
    )
    expiring.add_argument(
        "--within-days", type=_whole, default=30, metavar="DAYS",
        help="those expiring within DAYS from now (default 30)",
    )  # fmt: skip
    expiring.add_argument("--limit", type=_positive, metavar="N", help="at most N certificates")
    return [listing, show, history, tree, expiring]


def add_changes(subparsers: Subparsers[CommandParser]) -> list[CommandParser]:
    renew = _command(
        subparsers,
        "renew",
        commands.renew,
        "renew a certificate: same name, subject and issuer; new serial and validity",
        "A CA keeps its key; a server or device gets a new one unless --reuse-key or --csr.",
    )
    renew.add_argument("fqdn", metavar="FQDN")
    renew.add_argument("--validity-days", type=_positive, metavar="DAYS")
    renew.add_argument("--key-type", choices=(*KEY_TYPES, "ED25519"), help="a new key of this type")
    renew.add_argument("--csr", metavar="FILE", help="PEM CSR of the new key")
    renew.add_argument("--reuse-key", action="store_const", const=True, help="keep the current key")
    renew.add_argument(
        "--revoke-previous",
        action="store_const",
        const=True,
        help="revoke the renewed generation (reason superseded)",
    )
    renew.add_argument(
        "--serial", metavar="HEX", help="renew only if this is still the current generation"
    )
    _out_dir_option(renew)
    revoke = _command(
        subparsers,
        "revoke",
        commands.revoke,
        "revoke a certificate (every generation of it)",
        "A revoked CA issues nothing more; its CRL lists what it revoked.",
    )
    revoke.add_argument("fqdn", metavar="FQDN")
    revoke.add_argument("--reason", choices=REVOCATION_REASONS, help="default unspecified")
    delete = _command(
        subparsers,
        "delete",
        commands.delete,
        "delete a revoked certificate: its documents, private key and listing",
        "Its revocation stays on its CA's CRL, and its name is not issued again under that CA. "
        "A CA that issued certificates needs --cascade, which deletes them with it.",
    )
    delete.add_argument("fqdn", metavar="FQDN")
    delete.add_argument(
        "--cascade", action="store_true", help="a CA: with every certificate below it"
    )
    return [renew, revoke, delete]


def _output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")


def add_documents(
    subparsers: Subparsers[CommandParser],
) -> list[CommandParser]:
    crl = _command(subparsers, "crl", commands.crl, "download a CA's certificate revocation list")
    crl.set_defaults(json_output=False)
    crl.add_argument("ca", metavar="CA")
    crl.add_argument("--format", choices=("der", "pem"), default="der", help="default der")
    _output_option(crl)
    bundle = _command(
        subparsers,
        "bundle",
        commands.bundle,
        "download a certificate as pem, fullchain (certificate and chain), chain (a CA file: a "
        "CA and those above it, or a leaf's issuers) or pkcs12",
        "A pkcs12 file holds the key too, encrypted with the password, which is sent in the "
        "X-Bundle-Password header (never in the URL).",
    )
    bundle.set_defaults(json_output=False)
    bundle.add_argument("fqdn", metavar="FQDN")
    bundle.add_argument("--format", choices=("pem", "fullchain", "chain", "pkcs12"), default="pem")
    bundle.add_argument(
        "--password",
        default=os.environ.get("IOTCERT_BUNDLE_PASSWORD"),
        help="pkcs12 password (default: IOTCERT_BUNDLE_PASSWORD)",
    )
    bundle.add_argument("--serial", metavar="HEX", help="the generation with this serial")
    _output_option(bundle)
    key = _command(
        subparsers,
        "private-key",
        commands.private_key,
        "print the private key of a server or device",
    )
    key.add_argument("fqdn", metavar="FQDN")
    key.add_argument("--serial", metavar="HEX", help="the generation with this serial")
    _output_option(key)
    files = _command(
        subparsers,
        "files",
        commands.files,
        "write the PEM files a broker or device loads into a directory",
        "cert.pem, chain.pem, fullchain.pem (certificate then chain), key.pem (0600; servers\n"
        "and devices whose key the service made) and ca.pem (the root CA: the trust anchor).\n"
        "DIR is created 0700 when missing; existing files are replaced.",
    )
    files.add_argument("fqdn", metavar="FQDN")
    files.add_argument("directory", metavar="DIR")
    files.add_argument("--serial", metavar="HEX", help="the generation with this serial")
    return [crl, bundle, key, files]


def add_aws_iot(subparsers: Subparsers[CommandParser]) -> list[CommandParser]:
    group = subparsers.add_parser(
        "aws-iot",
        help="onboard a CA to AWS IoT Core (AWS backend)",
        description="Register a CA with AWS IoT Core, or make the verification certificate that "
        "registering it by hand needs.",
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    verification = _command(
        actions,
        "verification-certificate",
        commands.aws_iot_verification,
        "make the CA's verification certificate for AWS IoT's registration code",
        "Prints the certificate and its key (`aws iot register-ca-certificate "
        "--verification-cert`).",
    )
    verification.add_argument("ca", metavar="CA")
    verification.add_argument(
        "registration_code", metavar="CODE", help="what `aws iot get-registration-code` prints"
    )
    register = _command(
        actions,
        "register",
        commands.aws_iot_register,
        "register the CA with AWS IoT, its devices then provisioned just in time",
    )
    register.add_argument("ca", metavar="CA")
    register.add_argument("--mode", choices=("DEFAULT", "SNI_ONLY"), help="default DEFAULT")
    register.add_argument("--provisioning", choices=("jitp", "none"), help="default jitp")
    register.add_argument(
        "--no-auto-registration",
        dest="auto_registration",
        action="store_const",
        const=False,
        help="devices are not registered at their first connection (needs --provisioning none)",
    )
    return [verification, register]


def add_agent(subparsers: Subparsers[CommandParser]) -> list[CommandParser]:
    agent = _command(
        subparsers,
        "agent",
        agent_command.run,
        "keep a device's or broker's files in DIR current, renewing before expiry",
        "Writes cert.pem, chain.pem, fullchain.pem, key.pem and ca.pem into DIR (links to the "
        "generation in use, swapped at once), then renews once --renew-at of the lifetime has "
        "passed, runs --exec after each renewal, and backs off on errors; SIGTERM stops it.",
    )
    agent.add_argument("fqdn", metavar="FQDN")
    agent.add_argument("directory", metavar="DIR")
    agent.add_argument(
        "--renew-at", type=_fraction, default=2 / 3, metavar="FRACTION",
        help="renew once this share of the lifetime has passed (default 2/3, a little earlier "
        "at random)",
    )  # fmt: skip
    agent.add_argument(
        "--exec", metavar="CMD",
        help="run CMD after each renewal (e.g. 'systemctl reload mosquitto'; no shell)",
    )  # fmt: skip
    agent.add_argument("--once", action="store_true", help="one check, then exit (for cron)")
    agent.add_argument(
        "--key-on-device", action="store_true",
        help="make each new key here and send a CSR: the key never leaves this machine",
    )  # fmt: skip
    return [agent]


def _fraction(value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not 0 <= fraction <= 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a fraction from 0 to 1")
    return fraction


COMMANDS = (add_create, add_queries, add_changes, add_documents, add_aws_iot, add_agent)
"""Each adds its commands to the top-level subparsers and returns their parsers."""

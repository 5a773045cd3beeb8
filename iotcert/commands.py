"""One function per command: build the request from the arguments, call the API, show the answer
(`--json`: the service's JSON as it came)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from iotcert.client import ApiClient, ApiError, CliError, certificate_path
from iotcert.files import emit, read_text, usage_lines, write_certificate_files
from iotcert.output import (
    BULK_COLUMNS,
    CERTIFICATE_FIELDS,
    EXPIRING_COLUMNS,
    HISTORY_COLUMNS,
    LIST_COLUMNS,
    TreeNode,
    print_fields,
    print_json,
    print_table,
    tree_lines,
)

MAX_PAGE = 1000  # the API's largest `limit`
_SUBJECT_FIELDS = ("country", "state", "organization", "validity_days", "key_type")
ISSUE_FIELDS = {
    "root": ("fqdn", *_SUBJECT_FIELDS, "key_store"),
    "intermediate": ("fqdn", "parent_fqdn", "path_length", *_SUBJECT_FIELDS, "key_store"),
    "server": ("fqdn", "parent_fqdn", "sans", *_SUBJECT_FIELDS),
    "device": ("parent_fqdn", "count", *_SUBJECT_FIELDS),
}
RENEW_FIELDS = ("validity_days", "key_type", "reuse_key", "revoke_previous", "serial")
AWS_IOT_BODIES = {
    "thing": {"register": True, "thing": True},
    "certificate-only": {"register": True, "thing": False},
}
"""`create device --aws-iot`: each choice says whether the service makes the thing, which the API
requires with `register` (a certificate without a thing cannot connect under the stack's device
policy, so leaving it out must be a choice)."""


def _given(args: argparse.Namespace, fields: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(args, name) for name in fields if getattr(args, name) is not None}


def _csr_fields(csr_files: str | list[str] | None) -> dict[str, Any]:
    """`--csr FILE`: one is `csr`; a device given several is a bulk, `csrs`."""
    files = [csr_files] if isinstance(csr_files, str) else csr_files or []
    csrs = [read_text(path) for path in files]
    if len(csrs) > 1:
        return {"csrs": csrs}
    return {"csr": csrs[0]} if csrs else {}


def create(client: ApiClient, args: argparse.Namespace) -> None:
    body = _given(args, ISSUE_FIELDS[args.kind]) | _csr_fields(getattr(args, "csr", None))
    if getattr(args, "aws_iot", None):
        body["aws_iot"] = dict(AWS_IOT_BODIES[args.aws_iot])
    issued = client.post(f"/certificates/{args.kind}", body)
    _show_issued(issued, args)


def renew(client: ApiClient, args: argparse.Namespace) -> None:
    body = _given(args, RENEW_FIELDS) | _csr_fields(args.csr)
    _show_issued(client.post(certificate_path(args.fqdn, "renew"), body), args)


def _show_issued(issued: dict[str, Any], args: argparse.Namespace) -> None:
    """A POST's answer: one certificate, or a bulk of devices (`items`, one shared `chain`)."""
    out_dir = Path(args.out_dir) if getattr(args, "out_dir", None) else None
    usage = _write_issued(issued, out_dir) if out_dir else []
    if args.json:
        print_json(issued)
    elif "items" in issued:
        print_table(issued["items"], BULK_COLUMNS, "no certificates")
        print(f"{issued['count']} devices" + (f", files in {out_dir}/<fqdn>/" if out_dir else ""))
    else:
        print_fields(issued, CERTIFICATE_FIELDS)
        if usage:
            print("\n".join(usage))
        if "private_key" in issued and not out_dir:
            print(f"private key: not written; `iotcert files {issued['fqdn']} DIR` writes it")


def _write_issued(issued: dict[str, Any], out_dir: Path) -> list[str]:
    """`--out-dir`: the files of one certificate in it, of a bulk's each in `<out_dir>/<fqdn>/`;
    for one certificate, what each file is for."""
    if "items" not in issued:
        names = write_certificate_files(
            out_dir, issued["certificate"], issued["chain"], issued.get("private_key")
        )
        return usage_lines(out_dir, names, issued["type"])
    for device in issued["items"]:
        write_certificate_files(
            out_dir / device["fqdn"],
            device["certificate"],
            issued["chain"],
            device.get("private_key"),
        )
    return []


def list_certificates(client: ApiClient, args: argparse.Namespace) -> None:
    if args.parent is None and args.expiring_within_days is not None and args.status in (
        None, "active",
    ):  # the whole fleet's, not the roots'  # fmt: skip
        args.within_days = args.expiring_within_days
        expiring(client, args)
        return
    query = {
        "parent": args.parent,
        "expiring_within_days": args.expiring_within_days,
        "status": args.status,
    }
    items, next_token = list_all(client, query, args.limit, args.page_size)
    if args.json:
        print_json({"items": items, "next_token": next_token})
        return
    print_table(items, LIST_COLUMNS, "no certificates")
    if next_token is not None:
        print(f"... more than {len(items)}: raise --limit to see them")


def expiring(client: ApiClient, args: argparse.Namespace) -> None:
    query = {"within_days": args.within_days}
    items, next_token = list_all(client, query, args.limit, path="/certificates/expiring")
    if args.json:
        print_json({"items": items, "next_token": next_token})
        return
    print_table(items, EXPIRING_COLUMNS, f"nothing expires within {args.within_days} days")
    if next_token is not None:
        print(f"... more than {len(items)}: raise --limit to see them")


def list_all(
    client: ApiClient,
    query: dict[str, Any],
    limit: int | None = None,
    page_size: int = MAX_PAGE,
    path: str = "/certificates",
) -> tuple[list[dict[str, Any]], str | None]:
    """Every page, following `next_token`, or the first `limit` items and the token after them."""
    items: list[dict[str, Any]] = []
    next_token = None
    while True:
        size = page_size if limit is None else min(page_size, limit - len(items))
        page = client.get(path, {**query, "limit": size, "next_token": next_token})
        items.extend(page["items"])
        next_token = page["next_token"]
        if next_token is None or (limit is not None and len(items) >= limit):
            return items, next_token


def show(client: ApiClient, args: argparse.Namespace) -> None:
    certificate = client.get(certificate_path(args.fqdn), {"serial": args.serial})
    if args.json:
        print_json(certificate)
    else:
        print_fields(certificate, CERTIFICATE_FIELDS)


def history(client: ApiClient, args: argparse.Namespace) -> None:
    """Every generation, following the pages to the end."""
    path, items, token = certificate_path(args.fqdn, "history"), [], None
    while True:
        page = client.get(path, {"limit": MAX_PAGE, "next_token": token})
        items += page["items"]
        token = page["next_token"]
        if token is None:
            break
    if args.json:
        print_json({**page, "items": items})
    else:
        print_table(items, HISTORY_COLUMNS, "no generations")


def tree(client: ApiClient, args: argparse.Namespace) -> None:
    if args.ca:
        tops = [client.get(certificate_path(args.ca))]
    else:
        tops, _ = list_all(client, {})
    roots = [_subtree(client, item) for item in tops]
    if args.json:
        print_json([root.as_json() for root in roots])
    else:
        print("\n".join(tree_lines(roots, args.leaves)) or "no root CAs yet")


def _subtree(client: ApiClient, item: dict[str, Any]) -> TreeNode:
    node = TreeNode(item)
    if node.is_ca:
        children, _ = list_all(client, {"parent": item["fqdn"]})
        node.children = [_subtree(client, child) for child in children]
        node.children.sort(key=lambda child: not child.is_ca)  # CAs first, each by FQDN
    return node


def revoke(client: ApiClient, args: argparse.Namespace) -> None:
    body = {"reason": args.reason} if args.reason else {}
    revoked = client.post(certificate_path(args.fqdn, "revoke"), body)
    if args.json:
        print_json(revoked)
    else:
        print_fields(revoked, CERTIFICATE_FIELDS)


def delete(client: ApiClient, args: argparse.Namespace) -> None:
    query = {"cascade": "true"} if args.cascade else None
    deleted = client.delete(certificate_path(args.fqdn), query)
    if args.json:
        print_json(deleted)
    else:
        print_fields(deleted, CERTIFICATE_FIELDS)


def crl(client: ApiClient, args: argparse.Namespace) -> None:
    content = client.download(certificate_path(args.ca, "crl"), {"format": args.format})
    emit(content, args.output, binary=args.format == "der")


def bundle(client: ApiClient, args: argparse.Namespace) -> None:
    if args.format == "pkcs12" and not args.password:
        raise CliError("a pkcs12 bundle needs a password: --password or IOTCERT_BUNDLE_PASSWORD")
    headers = {"X-Bundle-Password": args.password} if args.format == "pkcs12" else {}
    content = client.download(
        certificate_path(args.fqdn, "bundle"),
        {"format": args.format, "serial": args.serial},
        headers,
    )
    emit(content, args.output, binary=args.format == "pkcs12", secret=args.format == "pkcs12")


def private_key(client: ApiClient, args: argparse.Namespace) -> None:
    document = client.get(certificate_path(args.fqdn, "private-key"), {"serial": args.serial})
    if args.json:
        print_json(document)
    else:
        emit(document["private_key"].encode(), args.output, binary=False, secret=True)


def stored_private_key(client: ApiClient, fqdn: str, serial: str | None) -> str | None:
    """The service's copy of a server's or device's key; None when it was issued from a CSR
    (the key never left the device)."""
    try:
        found = client.get(certificate_path(fqdn, "private-key"), {"serial": serial})
    except ApiError as err:
        if err.status != 404:
            raise
        return None
    return str(found["private_key"])


def files(client: ApiClient, args: argparse.Namespace) -> None:
    certificate = client.get(certificate_path(args.fqdn), {"serial": args.serial})
    key = None
    if certificate["type"] not in ("Root", "Intermediate"):  # a CA's key is never served
        key = stored_private_key(client, args.fqdn, args.serial)
    directory = Path(args.directory)
    names = write_certificate_files(
        directory, certificate["certificate"], certificate["chain"], key
    )
    if args.json:
        print_json({"fqdn": certificate["fqdn"], "directory": str(directory), "files": names})
    else:
        print("\n".join(usage_lines(directory, names, certificate["type"])))


def aws_iot_verification(client: ApiClient, args: argparse.Namespace) -> None:
    body = {"registration_code": args.registration_code}
    made = client.post(certificate_path(args.ca, "aws-iot", "verification-certificate"), body)
    if args.json:
        print_json(made)
    else:
        print(made["certificate"] + made["private_key"], end="")


def aws_iot_register(client: ApiClient, args: argparse.Namespace) -> None:
    body = _given(args, ("mode", "provisioning", "auto_registration"))
    registered = client.post(certificate_path(args.ca, "aws-iot", "register"), body)
    if args.json:
        print_json(registered)
    else:
        print_fields(registered, tuple((key.replace("_", " "), key) for key in registered))

"""What a person reads: aligned `key: value` lines, tables, the CA tree. `--json` prints the
service's JSON instead, for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CA_TYPES = frozenset({"Root", "Intermediate"})
CERTIFICATE_FIELDS = (
    ("fqdn", "fqdn"),
    ("type", "type"),
    ("parent", "parent_fqdn"),
    ("device id", "device_id"),
    ("status", "status"),
    ("generation", "generation"),
    ("serial", "serial"),
    ("previous serial", "previous_serial"),
    ("not before", "not_before"),
    ("not after", "not_after"),
    ("key type", "key_type"),
    ("key store", "key_store"),
    ("key id", "key_id"),
    ("fingerprint", "fingerprint_sha256"),
    ("ACM ARN", "acm_certificate_arn"),
    ("revoked at", "revoked_at"),
    ("reason", "revocation_reason"),
    ("issued certificates", "issued_certificates"),
    ("deleted", "deleted"),
)
LIST_COLUMNS = (
    ("FQDN", "fqdn"),
    ("TYPE", "type"),
    ("STATUS", "status"),
    ("VALID UNTIL", "valid_until"),
    ("KEY TYPE", "key_type"),
)
EXPIRING_COLUMNS = (
    ("FQDN", "fqdn"),
    ("TYPE", "type"),
    ("PARENT", "parent_fqdn"),
    ("NOT AFTER", "not_after"),
    ("DAYS LEFT", "days_left"),
)
BULK_COLUMNS = (
    ("FQDN", "fqdn"),
    ("SERIAL", "serial"),
    ("NOT AFTER", "not_after"),
    ("KEY TYPE", "key_type"),
)
HISTORY_COLUMNS = (
    ("GENERATION", "generation"),
    ("SERIAL", "serial"),
    ("STATUS", "status"),
    ("NOT BEFORE", "not_before"),
    ("NOT AFTER", "not_after"),
    ("KEY TYPE", "key_type"),
)


def print_json(document: Any) -> None:
    print(json.dumps(document, indent=2))


def print_fields(document: Mapping[str, Any], fields: Sequence[tuple[str, str]]) -> None:
    """`label: value` lines, aligned, for the fields the document has."""
    shown = [(label, document[key]) for label, key in fields if document.get(key) is not None]
    width = max((len(label) for label, _ in shown), default=0) + 1
    for label, value in shown:
        print(f"{label + ':':<{width}} {value}")


def print_table(
    items: Iterable[Mapping[str, Any]], columns: Sequence[tuple[str, str]], empty: str
) -> None:
    rows = [[title for title, _ in columns]] + [
        [str(item.get(key) if item.get(key) is not None else "-") for _, key in columns]
        for item in items
    ]
    if len(rows) == 1:
        print(empty)
        return
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@dataclass
class TreeNode:
    """A certificate and, for a CA, what it issued."""

    item: dict[str, Any]
    children: list[TreeNode] = field(default_factory=list)

    @property
    def is_ca(self) -> bool:
        return self.item["type"] in CA_TYPES

    def as_json(self) -> dict[str, Any]:
        return {**self.item, "children": [child.as_json() for child in self.children]}


def tree_lines(roots: Sequence[TreeNode], show_leaves: bool) -> list[str]:
    lines: list[str] = []
    for root in roots:
        lines.append(_tree_label(root, show_leaves))
        lines.extend(_branch(root, "", show_leaves))
    return lines


def _branch(node: TreeNode, prefix: str, show_leaves: bool) -> list[str]:
    shown = [child for child in node.children if show_leaves or child.is_ca]
    lines = []
    for index, child in enumerate(shown):
        last = index == len(shown) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{_tree_label(child, show_leaves)}")
        lines.extend(_branch(child, prefix + ("    " if last else "│   "), show_leaves))
    return lines


def _tree_label(node: TreeNode, show_leaves: bool) -> str:
    item = node.item
    details = [item["type"] if node.is_ca else _leaf_kind(item["type"])]
    if item.get("status") not in (None, "active"):
        details.append(str(item["status"]))
    details.append(f"until {str(item['not_after'])[:10]}")
    label = f"{item['fqdn']} ({', '.join(details)})"
    leaves = [child for child in node.children if not child.is_ca]
    if leaves and not show_leaves:
        label += ": " + _count_leaves(leaves)
    return label


def _leaf_kind(cert_type: str) -> str:
    return {"Server": "server", "Client": "device"}.get(cert_type, cert_type)


def _count_leaves(leaves: Sequence[TreeNode]) -> str:
    counts: dict[str, int] = {}
    for leaf in leaves:
        kind = _leaf_kind(leaf.item["type"])
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in counts.items())

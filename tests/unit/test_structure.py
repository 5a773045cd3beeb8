"""The shape of the code, checked: the dependency rule, the kind policies as the one place that
tells certificate kinds apart, the domain wording no HTTP field, and the one issuer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
CHALICELIB = PROJECT / "chalicelib"


def _sources(under: Path) -> dict[str, str]:
    return {
        str(path.relative_to(PROJECT)): path.read_text() for path in sorted(under.rglob("*.py"))
    }


def _imports(source: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
        elif isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
    return modules


def test_adapters_are_imported_by_the_wiring_and_other_adapters_only() -> None:
    """And by the local server's entry point, which holds the local store's serving lock."""
    for name, source in _sources(CHALICELIB).items():
        if name.startswith("chalicelib/adapters/") or name in (
            "chalicelib/wiring.py", "chalicelib/server.py",
        ):  # fmt: skip
            continue
        adapters = sorted(m for m in _imports(source) if m.startswith("chalicelib.adapters"))
        assert adapters == [], name


def test_the_domain_imports_neither_chalice_nor_boto3_nor_the_api() -> None:
    for name, source in _sources(CHALICELIB).items():
        if name.startswith(("chalicelib/api/", "chalicelib/adapters/")) or name in (
            "chalicelib/wiring.py", "chalicelib/asgi.py", "chalicelib/server.py",
        ):  # fmt: skip
            continue
        for module in _imports(source):
            top = module.split(".")[0]
            assert top not in ("chalice", "boto3", "botocore"), (name, module)
            assert not module.startswith("chalicelib.api"), (name, module)


def test_only_the_kind_policies_tell_certificate_kinds_apart() -> None:
    """No `is_ca`, and no comparison with a CertType member, outside chalicelib/kinds.py; the
    API maps each route to its kind (a table, not a branch)."""
    branch = re.compile(r"\b(is|is not|==|!=|in)\s+\(?CertType\.|\bis_ca\b")
    for name, source in _sources(CHALICELIB).items():
        if name in ("chalicelib/kinds.py", "chalicelib/model.py"):
            continue
        assert not branch.findall(source), name


def test_the_domain_names_concepts_not_the_api_s_fields() -> None:
    """Domain errors carry a Concept; chalicelib/api words them with the request's fields."""
    literal = re.compile(r"InvalidRequest\(\s*\"")
    for name, source in _sources(CHALICELIB).items():
        if name.startswith("chalicelib/api/") or name == "chalicelib/names.py":
            continue  # names.py takes the caller's field name as an argument
        assert not literal.findall(source), name


def test_only_the_issuer_writes_certificates() -> None:
    for name, source in _sources(CHALICELIB).items():
        if name.startswith("chalicelib/adapters/") or name in (
            "chalicelib/issuer.py", "chalicelib/fsck.py",
        ):  # fmt: skip
            continue
        assert ".put_certificate" not in source, name

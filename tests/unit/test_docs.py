"""The README and docs/: short where they must be, every link resolving, every runnable block run
by a test and safe to paste into a terminal, and the reference naming what the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from chalicelib.api.fields import FIELDS
from tests.docs import DOCUMENTS, PROJECT_ROOT, RUN, fenced_blocks, section

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", flags=re.MULTILINE)


def _relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def _prose(text: str) -> str:
    """The text outside fenced blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens dropped, spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    return {_anchor(heading) for heading in _HEADING.findall(_prose(document.read_text()))}


def test_the_readme_is_short_and_starts_with_the_two_commands() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    first_block = fenced_blocks(readme, "sh")[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [
        ["make", "run"],
        ["make", "test"],
    ]
    assert readme.index(first_block) < readme.index("\n## ")


def test_every_relative_link_resolves() -> None:
    broken = []
    for document in DOCUMENTS:
        for target in _LINK.findall(_prose(document.read_text())):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not checked offline
            path, _, anchor = target.partition("#")
            resolved = (document.parent / path).resolve() if path else document
            if not resolved.exists():
                broken.append(f"{_relative(document)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{_relative(document)}: {target} (no such heading)")
    assert broken == []


def test_no_document_points_outside_the_project() -> None:
    for document in DOCUMENTS:
        text = document.read_text()
        assert "DESIGN.md" not in text and "../shared" not in text, _relative(document)


def test_every_bash_block_is_run_by_a_test() -> None:
    """RUN (tests/docs.py) names each section whose ```bash blocks a test runs; no other block
    is ```bash, so a new example is either run or marked as shown only (```sh)."""
    found: dict[tuple[str, str], int] = {}
    for document in DOCUMENTS:
        text = "\n" + document.read_text()
        for heading in _HEADING.findall(_prose(text)):
            line = next(
                line for line in text.splitlines() if line.startswith("#") and
                line.split(" ", 1)[1] == heading
            )  # fmt: skip
            if line.startswith("# "):
                continue
            count = len(fenced_blocks(section(_relative(document), line), "bash"))
            if count:
                found[(_relative(document), line)] = count
    assert found == RUN


def test_runnable_blocks_are_safe_to_paste_into_a_terminal() -> None:
    """Pasted into an interactive shell, `set -e` or `exit` would close it at the first error."""
    unsafe = re.compile(r"^\s*(set\s+-[a-z]*[eu]|set\s+-o\s+(errexit|nounset)|exit\b)", re.M)
    for document in DOCUMENTS:
        for block in fenced_blocks(document.read_text(), "bash"):
            assert not unsafe.search(block), f"{_relative(document)}:\n{block}"


def test_the_api_reference_names_every_request_field() -> None:
    reference = (PROJECT_ROOT / "docs" / "api.md").read_text()
    assert [field.name for field in FIELDS if f"`{field.name}`" not in reference] == []


def test_the_configuration_table_names_every_variable_the_service_reads() -> None:
    read = set()
    for source in (PROJECT_ROOT / "chalicelib").rglob("*.py"):
        text = source.read_text()
        read |= set(re.findall(r"(?:environ(?:\.get)?[\[(]|_choice\()\s*\"([A-Z][A-Z_]+)\"", text))
    assert read, "no environment variable found: the pattern no longer matches the code"
    table = section("docs/operations.md", "## Configuration")
    assert sorted(name for name in read if f"`{name}`" not in table) == []

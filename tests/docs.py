"""The runnable examples of the README and docs/: every ```bash block is run by a test, found by
the document and the heading of its section. ```sh blocks are shown, not run (they need AWS or
Terraform against a real account)."""

from __future__ import annotations

import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md")))

_FENCED = re.compile(r"^```(\w*)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)

# Every runnable block, by document and section, and how many there are: a test runs each, and
# test_every_bash_block_is_run checks that this list and the documents agree.
RUN = {
    ("README.md", "## Walk-through"): 1,
    ("README.md", "## The CLI"): 1,
    ("README.md", "## Renewal and revocation"): 1,
    ("README.md", "## Cleaning up a test fleet"): 1,
    ("README.md", "## A revoked cell, cut off a broker"): 1,
    ("README.md", "## CA keys in an HSM"): 1,
    ("docs/api.md", "## Fleet features"): 5,
    ("docs/api.md", "## Deleting certificates"): 1,
    ("docs/api.md", "## Renewal and CA rollover"): 2,
    ("docs/cli.md", "## Walk-through: a device on mosquitto"): 1,
}


def fenced_blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in _FENCED.findall(text) if lang == language]


def section(document: str, heading: str) -> str:
    """The text under `heading` (a `## ` or `### ` line) up to the next heading of its level."""
    text = (PROJECT_ROOT / document).read_text()
    level = heading.split(" ", 1)[0]
    assert f"\n{heading}\n" in text, f"{document} has no heading {heading!r}"
    return text.split(f"\n{heading}\n", 1)[1].split(f"\n{level} ", 1)[0]


def bash_blocks(document: str, heading: str) -> str:
    """The bash blocks of a section, joined, as a user pastes them one after the other."""
    blocks = fenced_blocks(section(document, heading), "bash")
    expected = RUN[(document, heading)]
    assert len(blocks) == expected, (
        f"{document}, {heading}: {len(blocks)} bash blocks, not {expected}"
    )
    return "\n".join(blocks)


def script(*sections: tuple[str, str]) -> str:
    """Sections' blocks as one bash script that stops at the first failing command (the blocks
    themselves never `set -e` or `exit`: pasted into a terminal, that would close it)."""
    return "set -e\n" + "\n".join(bash_blocks(document, heading) for document, heading in sections)


WALKTHROUGH = ("README.md", "## Walk-through")


def walkthrough_script() -> str:
    return script(WALKTHROUGH)

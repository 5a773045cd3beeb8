"""The order the suite's files run in (tests/conftest.py): the longest first, each file whole."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import LONGEST_FILES
from tests.helpers import PROJECT_ROOT


def test_every_longest_file_exists() -> None:
    for name in LONGEST_FILES:
        assert (PROJECT_ROOT / name).is_file(), name


def test_the_longest_files_are_collected_first_longest_first() -> None:
    short = "tests/unit/test_names.py"
    given = [short, LONGEST_FILES[2], LONGEST_FILES[0]]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *given],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    files = list(dict.fromkeys(line.split("::")[0] for line in collected.splitlines()
                               if "::" in line))  # fmt: skip
    assert files == [LONGEST_FILES[0], LONGEST_FILES[2], short]

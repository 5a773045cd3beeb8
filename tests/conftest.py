"""The test tiers' shared fixtures (tests/fixtures.py), the `moto` mark, set here, and the order
in which pytest-xdist hands out test files."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures"]

SERIAL_FILES = frozenset({"tests/e2e/test_docs_examples.py"})
"""Files marked `serial`: `make pytest` runs them after its parallel pass, on an idle machine (the
documented scripts wait for mosquitto by reading its log, which a loaded machine can outrun)."""


LONGEST_FILES = (
    "tests/e2e/test_terraform_stages.py",  # about 3 minutes, mostly waiting on Terraform
    "tests/contract/test_revocation_protocol.py",
    "tests/e2e/test_terraform.py",
    "tests/e2e/test_portal_browser.py",
    "tests/api/test_expiring.py",
    "tests/e2e/test_server_bounds.py",
    "tests/e2e/test_openapi.py",
    "tests/api/test_listing.py",
    "tests/e2e/test_bench.py",
    "tests/api/test_bulk_and_expiry.py",
    "tests/e2e/test_run_moto.py",
)
"""The files that take longest (`pytest --durations`), longest first: they run before all others,
so that under pytest-xdist none starts late and keeps one worker busy after the rest are done."""


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks, then the order the files run in:
    - `moto` on every test on the AWS backend (`backend` or `module_backend` is "aws") or on
      AWS resources under moto (`aws_resources`); the contract suites mark their AWS adapters
      with `adapter_params`. `serial` on the tests of SERIAL_FILES.
    - The files of LONGEST_FILES first, longest first, then the files whose tests are all
      `slow`, then those with some; each file whole and in its own order. `make pytest` hands
      files out in this order (`--dist loadfile --no-loadscope-reorder`): a long file started
      last would keep one worker busy after the others are done."""
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_aws = "aws" in (params.get("backend"), params.get("module_backend"))
        if on_aws or "aws_resources" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.moto)
        name = item.nodeid.split("::")[0]
        if name in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
        files.setdefault(name, []).append(item)

    def weight(tests: list[pytest.Item]) -> tuple[int, int]:
        name = tests[0].nodeid.split("::")[0]
        if name in LONGEST_FILES:
            return (0, LONGEST_FILES.index(name))
        slow = [test.get_closest_marker("slow") is not None for test in tests]
        return (1, 0 if all(slow) else 1 if any(slow) else 2)

    items[:] = [item for tests in sorted(files.values(), key=weight) for item in tests]

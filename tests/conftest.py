"""The test tiers' shared fixtures (tests/fixtures.py), the `moto` mark, set here, and the order
in which pytest-xdist hands out test files."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.fixtures"]

SERIAL_FILES = frozenset({"tests/e2e/test_docs_examples.py"})
"""Files marked `serial`: `make pytest` runs them after its parallel pass, on an idle machine (the
documented scripts wait for mosquitto by reading its log, which a loaded machine can outrun)."""


@pytest.hookimpl(tryfirst=True)  # before `-m` selects on the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`moto` on every test on the AWS backend (`backend` or `module_backend` is "aws") or on AWS
    resources under moto (`aws_resources`); the contract suites mark their AWS adapters with
    `adapter_params`. `serial` on the tests of SERIAL_FILES."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_aws = "aws" in (params.get("backend"), params.get("module_backend"))
        if on_aws or "aws_resources" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.moto)
        if item.nodeid.split("::")[0] in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)


LONGEST_FILES = (
    "tests/e2e/test_terraform_stages.py",  # about 4 minutes, mostly waiting on Terraform
    "tests/contract/test_revocation_protocol.py",
    "tests/e2e/test_terraform.py",
    "tests/e2e/test_server_bounds.py",
    "tests/e2e/test_openapi.py",
    "tests/api/test_expiring.py",
    "tests/e2e/test_bench.py",
    "tests/e2e/test_portal_browser.py",
)
"""The files that take longest (`pytest --durations`), longest first: handed out before all others,
so that none starts late and keeps one worker busy after the rest are done."""


@pytest.hookimpl(specname="pytest_collection_modifyitems", trylast=True)
def slow_files_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make pytest`: `--dist loadfile --no-loadscope-reorder`), the files
    whose tests are all `slow` first, then those with some, each file whole and in its own order:
    a long file started last would keep one worker busy after the others are done."""
    if not hasattr(config, "workerinput"):
        return  # a plain run keeps the collection order
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def weight(tests: list[pytest.Item]) -> tuple[int, int]:
        name = tests[0].nodeid.split("::")[0]
        if name in LONGEST_FILES:
            return (0, LONGEST_FILES.index(name))
        slow = [test.get_closest_marker("slow") is not None for test in tests]
        return (1, 0 if all(slow) else 1 if any(slow) else 2)

    items[:] = [item for tests in sorted(files.values(), key=weight) for item in tests]

"""`chalice local` with timers around two stages of every request, for `make bench-profile`.

`python -m bench.server_timers local --stage local ...` takes `chalice`'s own arguments and
serves exactly as `make run` does, except that it adds up the time of each request's
`LocalGateway.handle_request` (chalice's dispatch, with everything the app does) and, inside it,
of `CertificateService.create_devices` (the service call). On SIGUSR1 it writes the totals so far
to the file `BENCH_TIMERS_FILE` names, as JSON `{label: [calls, seconds]}`, and starts afresh.
The client's own clock then gives what the HTTP server, the socket and the client add.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

TIMERS_FILE_VARIABLE = "BENCH_TIMERS_FILE"
SERVICE = "service call"
DISPATCH = "chalice dispatch"


@dataclass
class Total:
    """The calls of one timed function and their seconds, added up."""

    calls: int = 0
    seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.calls += 1
        self.seconds += seconds

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0


def timed(original: Callable[..., Any], total: Total) -> Callable[..., Any]:
    """`original`, adding the time of each call to `total`."""

    def timed_call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            total.add(time.perf_counter() - started)

    return timed_call


_totals: dict[str, Total] = defaultdict(Total)


def _write_totals(signum: int, frame: object) -> None:
    path = os.environ[TIMERS_FILE_VARIABLE]
    with open(f"{path}.partial", "w") as handle:
        json.dump({label: [total.calls, total.seconds] for label, total in _totals.items()}, handle)
    os.replace(f"{path}.partial", path)  # the reader never sees half a file
    for total in _totals.values():  # in place: each timed function holds its own
        total.reset()


def main() -> None:
    from chalice.cli import main as chalice_main
    from chalice.local import LocalGateway

    from chalicelib.service import CertificateService

    for owner, name, label in (
        (LocalGateway, "handle_request", DISPATCH),
        (CertificateService, "create_devices", SERVICE),
    ):
        setattr(owner, name, timed(getattr(owner, name), _totals[label]))
    signal.signal(signal.SIGUSR1, _write_totals)
    sys.argv = ["chalice", *sys.argv[1:]]
    chalice_main()


if __name__ == "__main__":
    main()

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
from typing import Any

TIMERS_FILE_VARIABLE = "BENCH_TIMERS_FILE"
SERVICE = "service call"
DISPATCH = "chalice dispatch"

_totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])


def _add_timer(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            total = _totals[label]
            total[0] += 1
            total[1] += time.perf_counter() - started

    setattr(owner, name, timed)


def _write_totals(signum: int, frame: object) -> None:
    path = os.environ[TIMERS_FILE_VARIABLE]
    with open(f"{path}.partial", "w") as handle:
        json.dump(dict(_totals), handle)
    os.replace(f"{path}.partial", path)  # the reader never sees half a file
    _totals.clear()


def main() -> None:
    from chalice.cli import main as chalice_main
    from chalice.local import LocalGateway

    from chalicelib.service import CertificateService

    _add_timer(LocalGateway, "handle_request", DISPATCH)
    _add_timer(CertificateService, "create_devices", SERVICE)
    signal.signal(signal.SIGUSR1, _write_totals)
    sys.argv = ["chalice", *sys.argv[1:]]
    chalice_main()


if __name__ == "__main__":
    main()

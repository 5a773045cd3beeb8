"""`make run`'s expiry scan: in one worker process of the server at a time, at start and then
every `EXPIRY_SCAN_HOURS`, the service's `notify_expiring` and, with PURGE_EXPIRED_AFTER_DAYS, its
`purge_expired` (on AWS, a scheduled function runs them).

Every worker runs a scanner thread; the one holding `<store>/.expiry-scan` (an exclusive `flock`,
given up only when its process ends) scans, the others look again every interval, so one takes
over when that worker is gone. A second scan the same day sends nothing again in any case: the
inventory notes each notice before it is sent (chalicelib.service).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

logger = logging.getLogger("iot_cert_service.jobs")
LOCK_NAME = ".expiry-scan"


class ExpiryScanner:
    def __init__(
        self, store: Path, every_seconds: float, scan: Callable[[], dict[str, int]]
    ) -> None:
        self._store = store
        self._every = every_seconds
        self._scan = scan
        self._stop = threading.Event()
        self._lock: IO[str] | None = None
        self._thread = threading.Thread(target=self._run, name="expiry-scan", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._holds_the_lock():
                try:
                    self._scan()  # which logs what it did
                except Exception:  # logged; the next interval tries again
                    logger.exception(json.dumps({"job": "expiry-scan", "failed": True}))
            self._stop.wait(self._every)

    def _holds_the_lock(self) -> bool:
        if self._lock is not None:
            return True
        self._store.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self._store / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        lock = os.fdopen(descriptor, "r+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        self._lock = lock
        return True

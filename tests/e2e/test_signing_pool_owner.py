"""The signing pool's processes outlive no owner: a process that started a pool is killed with
SIGKILL, and every pool process leaves on its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from devtools.procfs import is_gone
from tests.helpers import PROJECT_ROOT

OWNER = """
import json, sys, time
from tests.signing import make_orders, make_terms
from chalicelib.adapters.local.signing_pool import MIN_POOLED, PoolSigner
from devtools.procfs import child_pids
import os
signer = PoolSigner(2)
list(signer.sign_devices(make_terms(), make_orders(MIN_POOLED)))
while signer._ready_executor() is None:
    time.sleep(0.05)
print(json.dumps(child_pids(os.getpid())), flush=True)
time.sleep(600)
"""


def test_pool_processes_leave_when_their_owner_is_killed() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    with owner.stdout:
        try:
            pool = json.loads(owner.stdout.readline())
            assert len(pool) >= 2
        finally:
            owner.send_signal(signal.SIGKILL)
            owner.wait(timeout=10)
    deadline = time.monotonic() + 10
    while not all(is_gone(pid) for pid in pool) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(is_gone(pid) for pid in pool), "pool processes outlived their owner"

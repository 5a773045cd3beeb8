"""Adjustments to the `chalice local` development server, applied only when it is loaded."""

from __future__ import annotations

import sys


def tune_local_server() -> None:
    """Send responses without Nagle's delay.

    The stock handler writes the headers and the body in two small writes; with Nagle's algorithm
    the second waits for the client's delayed ACK, about 40 ms per request on a keep-alive
    connection. TCP_NODELAY on each connection removes that wait.
    """
    local = sys.modules.get("chalice.local")
    if local is not None:
        local.ChaliceRequestHandler.disable_nagle_algorithm = True

"""Signing device certificates shared with one helper process (local backend).

A bulk of device certificates is CPU-bound (a key pair each, unless a CSR brings the public key,
and a signature each), and one Python process signs on one core. `SharedSigner` hands chunks of a
bulk to a helper (`python -m chalicelib.signing_helper`, a child of the server) and signs the rest
itself with the same `issuance.sign_device`. The certificates come out in request order, each as
soon as it and every one before it are signed: the server stores them while the helper signs on.

The first bulk large enough to share starts the helper and is signed here alone; later ones
share once the helper has said it is ready, so no request waits for its start-up. If it stops,
stalls or answers out of protocol, the bulk goes on in this process and the next one starts a new
helper (three helpers in a row that never become ready end the attempts). The CA's key reaches
the helper through a pipe, never a file; the helper exits when that pipe closes, which the kernel
does when the server dies, even by SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import selectors
import struct
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from cryptography import x509

from chalicelib.issuance import BulkTerms, DeviceOrder, SignedDevice, sign_device
from chalicelib.signing_helper import HEADER, READY, orders_frame, terms_frame, unpack_fields

logger = logging.getLogger(__name__)

MIN_SHARED = 32
"""Smaller bulks are signed in process: the round trips would cost more than they save."""
CHUNK = 16
"""Orders per message to the helper (one for RSA, whose keys take long); two messages are kept
in flight so that it never idles. A message stays far below a pipe's buffer."""
REPLY_TIMEOUT_SECONDS = 30.0
"""A helper silent this long while it owes a reply is taken for stalled and stopped."""
MAX_FAILED_STARTS = 3

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class HelperGone(Exception):
    """The helper stopped, stalled or answered out of protocol."""


class _Helper:
    """One running helper process and the pipes to it."""

    def __init__(self, command: Sequence[str], reply_timeout: float) -> None:
        path = os.pathsep.join(filter(None, [str(_PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
            cwd=_PROJECT_ROOT, env={**os.environ, "PYTHONPATH": path},
            process_group=0,  # Ctrl-C at the terminal is for the server, not for its helper
        )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self._input: BinaryIO = self.process.stdin
        self._output = self.process.stdout
        self._readable = selectors.DefaultSelector()
        self._readable.register(self._output, selectors.EVENT_READ)
        self._buffer = bytearray()
        self._reply_timeout = reply_timeout
        self._sent = 0  # orders messages so far; each reply names the one it answers
        self.ready = False

    def send_terms(self, terms: BulkTerms) -> None:
        self._send(terms_frame(terms))

    def send_orders(self, orders: Sequence[DeviceOrder]) -> int:
        self._sent += 1
        self._send(orders_frame(self._sent, orders))
        return self._sent

    def _send(self, frame: bytes) -> None:
        try:
            view = memoryview(frame)
            while view:
                view = view[self._input.write(view) or 0 :]
        except OSError as err:  # BrokenPipeError and the like
            raise HelperGone(f"the signing helper took no more work ({err})") from err

    def has_reply(self) -> bool:
        """A whole frame is buffered, or the pipe has something (data or its end) to read."""
        return self._complete_frame_size() is not None or bool(self._readable.select(0))

    def receive(self) -> list[bytes]:
        while (size := self._complete_frame_size()) is None:
            if not self._readable.select(self._reply_timeout):
                raise HelperGone(f"the signing helper did not answer in {self._reply_timeout} s")
            data = os.read(self._output.fileno(), 1 << 16)
            if not data:
                raise HelperGone(f"the signing helper exited (code {self.process.poll()})")
            self._buffer += data
        payload = bytes(self._buffer[HEADER.size : HEADER.size + size])
        del self._buffer[: HEADER.size + size]
        try:
            return unpack_fields(payload)
        except struct.error as err:
            raise HelperGone(f"the signing helper sent a malformed message ({err})") from err

    def _complete_frame_size(self) -> int | None:
        if len(self._buffer) < HEADER.size:
            return None
        (size,) = HEADER.unpack_from(self._buffer)
        return size if len(self._buffer) >= HEADER.size + size else None

    def poll_ready(self, timeout: float = 0) -> bool:
        """True once the helper has said it is ready; waits at most `timeout` seconds."""
        if not self.ready and (self.has_reply() or self._readable.select(timeout)):
            if self.receive() != [READY]:
                raise HelperGone("the signing helper did not start as expected")
            self.ready = True
        return self.ready

    def running(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Close both pipes, which ends it; kill it if it does not end at once."""
        self._readable.close()
        for stream in (self._input, self._output):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


HELPER_COMMAND = (sys.executable, "-m", "chalicelib.signing_helper")


class SharedSigner:
    """Signs bulks of at least `min_shared` devices here and in one helper process together.

    One bulk at a time shares with the helper; a bulk arriving meanwhile (the local server answers
    requests on threads) is signed in process, as are smaller bulks.
    """

    def __init__(
        self,
        command: Sequence[str] = HELPER_COMMAND,
        min_shared: int = MIN_SHARED,
        chunk: int = CHUNK,
        reply_timeout: float = REPLY_TIMEOUT_SECONDS,
    ) -> None:
        self._command = tuple(command)
        self._min_shared = max(min_shared, 2)
        self._chunk = chunk
        self._reply_timeout = reply_timeout
        self._helper: _Helper | None = None
        self._failed_starts = 0
        self._lock = threading.Lock()  # held by the bulk that shares with the helper
        atexit.register(self.close)

    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Iterator[SignedDevice]:
        helper = self._claim_helper(len(orders))
        if helper is None:
            for order in orders:
                yield sign_device(terms, order)
            return
        try:
            yield from self._share(helper, terms, orders)
        finally:
            self._lock.release()

    def helper_pid(self) -> int | None:
        return self._helper.process.pid if self._helper is not None else None

    def wait_until_ready(self, timeout: float) -> bool:
        """Start the helper if needed and wait for it (tests and benchmarks)."""
        with self._lock:
            if self._helper is not None and not self._helper.running():
                self._stop()
            helper = self._helper or self._start()
            try:
                return helper is not None and helper.poll_ready(timeout)
            except HelperGone:
                self._stop()
                return False

    def close(self) -> None:
        """Stop the helper; at exit, without waiting for a bulk that is still using it."""
        if self._lock.acquire(timeout=1):
            try:
                self._stop()
            finally:
                self._lock.release()
        elif self._helper is not None:
            self._helper.process.kill()

    def _claim_helper(self, count: int) -> _Helper | None:
        """The ready helper, with the lock held for this bulk; None (lock free) to sign alone."""
        if count < self._min_shared or not self._lock.acquire(blocking=False):
            return None
        try:
            helper = self._ready_helper()
        except BaseException:
            self._lock.release()
            raise
        if helper is None:
            self._lock.release()
        return helper

    def _ready_helper(self) -> _Helper | None:
        """The helper if it is ready; otherwise start one (when none runs) for later bulks."""
        if self._helper is not None and not self._helper.running():
            if not self._helper.ready:
                self._failed_starts += 1
            self._stop()
        if self._helper is None:
            if self._failed_starts < MAX_FAILED_STARTS:
                self._start()
            elif self._failed_starts == MAX_FAILED_STARTS:
                self._failed_starts += 1
                logger.warning("the signing helper never became ready; bulks sign in process")
            return None
        try:
            if not self._helper.poll_ready():
                return None
        except HelperGone as err:
            logger.warning("%s; signing in this process", err)
            self._failed_starts += 1
            self._stop()
            return None
        self._failed_starts = 0
        return self._helper

    def _start(self) -> _Helper | None:
        try:
            self._helper = _Helper(self._command, self._reply_timeout)
        except OSError as err:
            logger.warning("the signing helper could not start (%s); signing in this process", err)
            self._failed_starts += 1
            self._helper = None
        return self._helper

    def _stop(self) -> None:
        if self._helper is not None:
            self._helper.close()
            self._helper = None

    def _share(
        self, helper: _Helper, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Iterator[SignedDevice]:
        results: list[SignedDevice | None] = [None] * len(orders)
        waiting = deque(range(len(orders)))  # indexes nobody signs yet, in order
        in_flight: deque[tuple[int, list[int]]] = deque()  # (message, indexes), oldest first
        chunk = 1 if terms.key_type.is_rsa else self._chunk
        given = 0  # results[:given] are out

        def hand_over() -> None:
            # smaller near the end, so that neither side waits long for the other to finish
            size = max(1, min(chunk, len(waiting) // 4))
            indexes = [waiting.popleft() for _ in range(size)]
            in_flight.append((helper.send_orders([orders[i] for i in indexes]), indexes))

        try:
            helper.send_terms(terms)
            hand_over()
            hand_over()
            while waiting or in_flight:
                if in_flight and (not waiting or helper.has_reply()):
                    number, indexes = in_flight.popleft()
                    self._take_reply(helper.receive(), number, indexes, terms, orders, results)
                    if waiting:
                        hand_over()  # before the caller stores: the helper never idles
                else:
                    index = waiting.popleft()
                    results[index] = sign_device(terms, orders[index])
                while given < len(orders) and (ready := results[given]) is not None:
                    given += 1
                    yield ready  # the caller stores it while the helper signs on
        except HelperGone as err:
            logger.warning("%s; the bulk goes on in this process", err)
            self._stop()
        except BaseException:  # the caller stopped early (GeneratorExit) included
            self._stop()  # replies it still owes must never reach a later bulk
            raise
        for index in range(given, len(orders)):  # the helper's share, after it failed
            yield results[index] or sign_device(terms, orders[index])

    @staticmethod
    def _take_reply(
        fields: list[bytes],
        number: int,
        indexes: list[int],
        terms: BulkTerms,
        orders: Sequence[DeviceOrder],
        results: list[SignedDevice | None],
    ) -> None:
        if not fields or fields[0] != str(number).encode() or len(fields) != 1 + 2 * len(indexes):
            raise HelperGone(f"the signing helper answered out of turn (message {number})")
        for position, index in enumerate(indexes):
            certificate_der, key_pem = fields[1 + 2 * position : 3 + 2 * position]
            material = orders[index].material
            try:
                certificate = x509.load_der_x509_certificate(certificate_der)
                private_key_pem = key_pem.decode("ascii") or None
            except ValueError as err:  # UnicodeDecodeError included
                raise HelperGone(f"the signing helper sent an unreadable answer ({err})") from err
            results[index] = SignedDevice(
                certificate,
                certificate_der,
                material.key_type if material else terms.key_type,
                private_key_pem,
            )

"""Bulk device signing in worker processes (`concurrent.futures.ProcessPoolExecutor`).

A bulk is CPU-bound (a key pair and a signature per certificate) and one Python process signs on
one core. `PoolSigner` sends a large bulk, in chunks, to a small process pool and yields the
certificates in request order as they come back, so the caller stores each one while the pool
signs the next. The pool starts with the first large bulk, which is signed in process while the
pool warms up; a pool that breaks (a process killed) is replaced on the next bulk, and what it
still owed is signed in process. The CA's key reaches the pool's processes through their pipe
(PKCS#8 DER), never through a file. Each process exits when the process that started it is gone,
even after a SIGKILL. A CA whose key a key store holds signs its bulks in process: its key
cannot travel.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chalicelib import pki
from chalicelib.held_keys import is_held
from chalicelib.issuance import sign_device, sign_on_threads
from chalicelib.model import KeyType, SubjectDetails
from chalicelib.ports.signer import BulkTerms, DeviceOrder, KeyMaterial, SignedDevice

logger = logging.getLogger(__name__)

MIN_POOLED = 32
"""Smaller bulks are signed in process: the round trips would cost more than they save."""
CHUNK = 16
"""Orders per task (one for RSA keys, whose generation is slow and uneven)."""
PARENT_CHECK_SECONDS = 1.0
MAX_FAILED_STARTS = 3
"""After this many pools in a row whose processes never came up, bulks stay in process."""

WireOrder = tuple[str, str, bytes | None, str | None]
"""device_id, fqdn, and for a CSR its public key (SubjectPublicKeyInfo DER) and key type."""
WireDevice = tuple[bytes, str, str | None]
"""certificate DER, key type, private key PEM (None for a CSR)."""


@dataclass(frozen=True)
class WireTerms:
    """BulkTerms as bytes and plain values, for the trip to a pool process."""

    ca_certificate_der: bytes
    ca_key_der: bytes
    not_before: datetime
    not_after: datetime
    subject: SubjectDetails
    key_type: KeyType
    crl_url: str | None

    @classmethod
    def from_terms(cls, terms: BulkTerms) -> WireTerms:
        authority = terms.authority
        return cls(
            authority.certificate.public_bytes(serialization.Encoding.DER),
            authority.private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            terms.validity.not_before,
            terms.validity.not_after,
            terms.subject,
            terms.key_type,
            terms.crl_url,
        )


def _wire_order(order: DeviceOrder) -> WireOrder:
    material = order.material
    if material is None:
        return order.device_id, order.fqdn, None, None
    public_der = material.public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return order.device_id, order.fqdn, public_der, material.key_type.value


@functools.lru_cache(maxsize=4)
def _authority(certificate_der: bytes, key_der: bytes) -> pki.SigningAuthority:
    """Loaded once per CA in a pool process (every chunk of a bulk carries the same bytes)."""
    private_key = serialization.load_der_private_key(key_der, password=None)
    return pki.SigningAuthority(x509.load_der_x509_certificate(certificate_der), private_key)  # type: ignore[arg-type]


def sign_chunk(terms: WireTerms, orders: Sequence[WireOrder]) -> list[WireDevice]:
    """Runs in a pool process: the same `sign_device` as in process."""
    bulk = BulkTerms(
        _authority(terms.ca_certificate_der, terms.ca_key_der),
        pki.Validity(terms.not_before, terms.not_after),
        terms.subject,
        terms.key_type,
        terms.crl_url,
    )
    signed = []
    for device_id, fqdn, public_der, key_type in orders:
        material = None
        if public_der is not None and key_type is not None:
            public_key = serialization.load_der_public_key(public_der)
            material = KeyMaterial(public_key, KeyType(key_type), None)  # type: ignore[arg-type]
        device = sign_device(bulk, DeviceOrder(device_id, fqdn, material))
        signed.append((device.certificate_der, device.key_type.value, device.private_key_pem))
    return signed


def _from_wire(device: WireDevice) -> SignedDevice:
    der, key_type, key_pem = device
    return SignedDevice(x509.load_der_x509_certificate(der), der, KeyType(key_type), key_pem)


def _exit_with_parent(parent_pid: int) -> None:
    """Pool process initializer: leave when the process that started the pool is gone (a
    SIGKILLed server closes no pipe that would wake an idle pool process)."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready() -> bool:
    return True


class PoolSigner:
    """A DeviceSigner that signs large bulks in `processes` pool processes."""

    def __init__(
        self, processes: int, initializer: Callable[[int], None] = _exit_with_parent
    ) -> None:
        self._processes = processes
        self._initializer = initializer
        self._executor: ProcessPoolExecutor | None = None
        self._warm: Future[bool] | None = None
        self._unavailable = False
        self._failed_starts = 0
        self._lock = threading.Lock()
        self.pooled_bulks = 0  # bulks the pool signed (observable in tests and benchmarks)
        self.rescued_chunks = 0  # chunks a broken pool owed, signed in process instead

    def sign_devices(
        self, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> Generator[SignedDevice, None, None]:
        if is_held(terms.authority.private_key):  # its key cannot travel: signed here
            yield from sign_on_threads(terms, orders)
            return
        executor = self._ready_executor() if len(orders) >= MIN_POOLED else None
        tasks = self._submit(executor, terms, orders) if executor is not None else None
        if executor is None or tasks is None:
            for order in orders:
                yield sign_device(terms, order)
            return
        self.pooled_bulks += 1
        try:
            for chunk_orders, future in tasks:
                try:
                    signed = [_from_wire(device) for device in future.result()]
                except (BrokenProcessPool, CancelledError):  # a pool process died (the broken
                    # pool's shutdown may cancel what it had not failed yet): signed here
                    self._discard(executor)
                    self.rescued_chunks += 1
                    signed = [sign_device(terms, order) for order in chunk_orders]
                yield from signed
        finally:  # a caller that stops early leaves nothing signing on its behalf
            for _, future in tasks:
                future.cancel()

    def _submit(
        self, executor: ProcessPoolExecutor, terms: BulkTerms, orders: Sequence[DeviceOrder]
    ) -> list[tuple[Sequence[DeviceOrder], Future[list[WireDevice]]]] | None:
        """Every chunk of the bulk, queued; None when the pool broke before taking them."""
        chunk = 1 if terms.key_type.is_rsa else CHUNK
        wire_terms = WireTerms.from_terms(terms)
        chunks = [orders[start : start + chunk] for start in range(0, len(orders), chunk)]
        try:
            return [
                (part, executor.submit(sign_chunk, wire_terms, [_wire_order(o) for o in part]))
                for part in chunks
            ]
        except BrokenProcessPool:
            self._discard(executor)
            return None

    def _ready_executor(self) -> ProcessPoolExecutor | None:
        """The pool once it has started; the first call starts it and returns None."""
        with self._lock:
            if self._unavailable:
                return None
            if self._executor is None:
                try:
                    self._executor = ProcessPoolExecutor(
                        self._processes,
                        mp_context=multiprocessing.get_context("spawn"),
                        initializer=self._initializer,
                        initargs=(os.getpid(),),
                    )
                    self._warm = self._executor.submit(_ready)
                except (OSError, ImportError, NotImplementedError) as err:  # no semaphores here
                    logger.warning("bulks are signed in process: no process pool (%s)", err)
                    self._unavailable = True
                return None
            if self._warm is not None:
                if not self._warm.done():
                    return None
                if self._warm.exception() is not None:  # no pool process came up
                    self._failed_starts += 1
                    self._unavailable = self._failed_starts >= MAX_FAILED_STARTS
                    broken, self._executor, self._warm = self._executor, None, None
                    broken.shutdown(wait=False, cancel_futures=True)
                    logger.warning("the signing pool did not start; bulks are signed in process")
                    return None
                self._warm = None
                self._failed_starts = 0
            return self._executor

    def _discard(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
                self._warm = None
        executor.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

"""Bulk signing in a process pool gives the certificates in-process signing gives, in order;
it falls back to signing in process while the pool starts and when a pool process dies. That the
pool's processes leave with their owner is in tests/e2e/test_signing_pool_owner.py."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store

from chalicelib import pki
from chalicelib.adapters.local.signing_pool import MIN_POOLED, PoolSigner
from chalicelib.issuance import BulkTerms, DeviceOrder, KeyMaterial, SignedDevice
from chalicelib.model import KeyType
from devtools.procfs import child_pids
from tests.signing import CELL, NOW, make_orders, make_terms


@pytest.fixture(scope="module")
def warm_signer() -> Iterator[PoolSigner]:
    """A pool signer whose pool has started (its first bulk is signed in process)."""
    signer = PoolSigner(2)
    list(signer.sign_devices(make_terms(), make_orders(MIN_POOLED)))
    wait_until_ready(signer)
    try:
        yield signer
    finally:
        signer.close()


def check_device(signed: SignedDevice, order: DeviceOrder, terms: BulkTerms) -> None:
    certificate = signed.certificate
    assert certificate.public_bytes(serialization.Encoding.DER) == signed.certificate_der
    common_name = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert common_name[0].value == order.device_id
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [order.fqdn]
    verifier = (
        PolicyBuilder()
        .store(Store([terms.authority.certificate]))
        .time(NOW)
        .build_client_verifier()
    )
    verifier.verify(certificate, [])
    if signed.private_key_pem is not None:
        key = serialization.load_pem_private_key(signed.private_key_pem.encode(), None)
        assert spki(key.public_key()) == spki(certificate.public_key())


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_a_pooled_bulk_comes_back_in_order_and_verifies(warm_signer: PoolSigner) -> None:
    terms = make_terms()
    orders = make_orders(100)
    pooled_before = warm_signer.pooled_bulks

    signed = list(warm_signer.sign_devices(terms, orders))

    assert warm_signer.pooled_bulks == pooled_before + 1
    assert len(signed) == len(orders)
    for device, order in zip(signed, orders, strict=True):
        check_device(device, order, terms)
        assert device.key_type is KeyType.EC_P256
    assert len({device.certificate.serial_number for device in signed}) == len(orders)


def test_csr_keys_travel_to_the_pool_and_back(warm_signer: PoolSigner) -> None:
    key_types = [KeyType.EC_P384, KeyType.ED25519, KeyType.RSA_2048, KeyType.EC_P256] * 10
    private_keys = {key_type: pki.generate_private_key(key_type) for key_type in set(key_types)}
    materials: list[KeyMaterial | None] = [
        KeyMaterial(private_keys[key_type].public_key(), key_type, None) for key_type in key_types
    ]
    terms = make_terms()
    orders = make_orders(len(materials), materials)

    signed = list(warm_signer.sign_devices(terms, orders))

    for device, order, key_type in zip(signed, orders, key_types, strict=True):
        check_device(device, order, terms)
        assert device.private_key_pem is None
        assert device.key_type is key_type
        assert spki(device.certificate.public_key()) == spki(private_keys[key_type].public_key())


def test_the_crl_distribution_point_travels_to_the_pool(warm_signer: PoolSigner) -> None:
    url = f"https://pki.example.net/certificates/{CELL}/crl"
    terms = make_terms(crl_url=url)

    signed = list(warm_signer.sign_devices(terms, make_orders(MIN_POOLED * 2)))

    for device in signed:
        points = device.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        assert [name.value for name in points.value[0].full_name or []] == [url]


def test_small_bulks_and_a_cold_pool_are_signed_in_process() -> None:
    signer = PoolSigner(1)
    terms = make_terms()
    try:
        small = list(signer.sign_devices(terms, make_orders(MIN_POOLED - 1)))
        first_large = list(signer.sign_devices(terms, make_orders(MIN_POOLED)))
        assert signer.pooled_bulks == 0  # the first large bulk starts the pool, without it
        assert len(small) == MIN_POOLED - 1 and len(first_large) == MIN_POOLED
    finally:
        signer.close()


def test_a_caller_that_stops_early_leaves_the_pool_usable(warm_signer: PoolSigner) -> None:
    terms = make_terms()
    bulk = warm_signer.sign_devices(terms, make_orders(500))
    first = [next(bulk) for _ in range(5)]
    bulk.close()  # cancels what was still queued

    orders = make_orders(64)
    after = list(warm_signer.sign_devices(terms, orders))

    assert len(first) == 5
    for device, order in zip(after, orders, strict=True):
        check_device(device, order, terms)


def wait_until_ready(signer: PoolSigner) -> None:
    deadline = time.monotonic() + 60
    while signer._ready_executor() is None and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.mark.slow
def test_a_pool_process_killed_mid_bulk_costs_no_certificate() -> None:
    """RSA orders (one a chunk, tens of milliseconds each): the pool is killed while it still
    owes most of them; those are signed in process, and the next bulks get a new pool."""
    signer = PoolSigner(1)
    terms = make_terms(KeyType.RSA_2048)
    try:
        list(signer.sign_devices(make_terms(), make_orders(MIN_POOLED)))  # starts the pool
        wait_until_ready(signer)
        orders = make_orders(MIN_POOLED)
        bulk = signer.sign_devices(terms, orders)
        signed = [next(bulk)]
        for pid in child_pids(os.getpid()):
            if b"spawn_main" in _command(pid):  # not the resource tracker
                os.kill(pid, signal.SIGKILL)
        signed += list(bulk)

        assert signer.rescued_chunks > 0
        assert len(signed) == len(orders)
        for device, order in zip(signed, orders, strict=True):
            check_device(device, order, terms)
        pooled = signer.pooled_bulks
        list(signer.sign_devices(make_terms(), make_orders(MIN_POOLED)))  # starts a new pool
        wait_until_ready(signer)
        list(signer.sign_devices(make_terms(), make_orders(MIN_POOLED)))
        assert signer.pooled_bulks == pooled + 1
    finally:
        signer.close()


def die_at_start(parent_pid: int) -> None:
    """A pool process initializer that fails as an unimportable module or a full disk would."""
    os._exit(3)


@pytest.mark.slow
def test_a_pool_that_never_starts_leaves_bulks_in_process_then_is_given_up() -> None:
    signer = PoolSigner(1, initializer=die_at_start)
    terms = make_terms()
    try:
        deadline = time.monotonic() + 60
        while not signer._unavailable and time.monotonic() < deadline:
            orders = make_orders(MIN_POOLED)
            signed = list(signer.sign_devices(terms, orders))
            for device, order in zip(signed, orders, strict=True):
                check_device(device, order, terms)
            time.sleep(0.2)  # a broken pool is seen as such once its warm-up has failed
        assert signer._unavailable  # three failed starts in a row: no fourth
        assert signer.pooled_bulks == 0
    finally:
        signer.close()


def _command(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read()
    except FileNotFoundError:
        return b""

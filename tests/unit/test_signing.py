"""Device signers: in process and shared with a helper process give the same certificates.

The shared signer is exercised with a real helper process; its failure paths with helpers that
stop, stall or answer out of protocol part-way through a bulk.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from chalicelib import pki, signing, signing_helper
from chalicelib.issuance import (
    BulkTerms,
    DeviceOrder,
    DeviceSigner,
    InProcessSigner,
    KeyMaterial,
    SignedDevice,
)
from chalicelib.model import KeyType, SubjectDetails
from chalicelib.signing import SharedSigner

NOW = datetime.now(UTC).replace(microsecond=0)
CSR_KEY_TYPES = (KeyType.EC_P384, KeyType.ED25519, KeyType.RSA_2048, KeyType.EC_P256)


def authority_terms(
    ca_key_type: KeyType, details: SubjectDetails, lifetime: timedelta, key_type: KeyType
) -> BulkTerms:
    """A fresh self-signed CA of `ca_key_type`, and terms for devices of `lifetime` under it."""
    key = pki.generate_private_key(ca_key_type)
    window = pki.Validity(NOW - timedelta(minutes=5), NOW + timedelta(days=30))
    subject = pki.build_subject("ca.example", SubjectDetails(country="FR"))
    root = pki.sign_certificate(pki.root_profile(), subject, key.public_key(), window, None, key)
    return BulkTerms(
        pki.SigningAuthority(root, key),
        pki.Validity(NOW - timedelta(minutes=5), NOW + lifetime),
        details,
        key_type,
    )


@pytest.fixture(scope="module")
def terms() -> BulkTerms:
    details = SubjectDetails(country="DE", organization="Acme Devices")
    return authority_terms(KeyType.EC_P256, details, timedelta(days=1), KeyType.EC_P256)


@functools.cache
def csr_materials() -> tuple[KeyMaterial, ...]:
    """One public key per CSR_KEY_TYPES, as a CSR brings it (made once: RSA keys are slow)."""
    return tuple(
        KeyMaterial(pki.generate_private_key(key_type).public_key(), key_type, None)
        for key_type in CSR_KEY_TYPES
    )


def spki(public_key: Any) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def orders_for(generated: int) -> list[DeviceOrder]:
    """`generated` orders for server-made keys, then one CSR order per CSR_KEY_TYPES."""
    orders = [
        DeviceOrder(f"device-{index}", f"device-{index}.cell.example", None)
        for index in range(generated)
    ]
    for index, material in enumerate(csr_materials()):
        orders.append(DeviceOrder(f"csr-{index}", f"csr-{index}.cell.example", material))
    return orders


def assert_signed_as_ordered(
    terms: BulkTerms, orders: list[DeviceOrder], signed: list[SignedDevice]
) -> None:
    root = terms.authority.certificate
    verifier = PolicyBuilder().store(Store([root])).time(NOW).build_client_verifier()
    assert len(signed) == len(orders)
    serials = {device.certificate.serial_number for device in signed}
    assert len(serials) == len(orders)
    for order, device in zip(orders, signed, strict=True):
        certificate = device.certificate
        assert device.certificate_der == certificate.public_bytes(serialization.Encoding.DER)
        verified = verifier.verify(certificate, [])
        assert verified.chain[-1] == root
        assert x509.DNSName(order.fqdn) in verified.subjects
        common_name = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        assert [attribute.value for attribute in common_name] == [order.device_id]
        organization = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        assert [attribute.value for attribute in organization] == ["Acme Devices"]
        assert certificate.not_valid_after_utc == terms.validity.not_after
        public_der = spki(certificate.public_key())
        if order.material is not None:
            assert device.private_key_pem is None
            assert device.key_type is order.material.key_type
            assert public_der == spki(order.material.public_key)
        else:
            assert device.key_type is terms.key_type
            assert device.private_key_pem is not None
            key = serialization.load_pem_private_key(device.private_key_pem.encode(), None)
            assert spki(key.public_key()) == public_der


@pytest.fixture
def make_signer() -> Iterator[Callable[..., SharedSigner]]:
    """Builds SharedSigners (arguments as the class takes them) and closes them all after."""
    made: list[SharedSigner] = []

    def make(**arguments: Any) -> SharedSigner:
        made.append(SharedSigner(**arguments))
        return made[-1]

    yield make
    for signer in made:
        signer.close()


@pytest.fixture
def shared(make_signer: Callable[..., SharedSigner]) -> SharedSigner:
    signer = make_signer(min_shared=2, chunk=4)
    assert signer.wait_until_ready(timeout=60), "the signing helper did not start"
    return signer


@pytest.mark.parametrize("kind", ["in process", "shared with a helper"])
def test_signers_sign_every_order_as_asked_and_in_order(
    kind: str, terms: BulkTerms, shared: SharedSigner
) -> None:
    signer: DeviceSigner = InProcessSigner() if kind == "in process" else shared
    orders = orders_for(40)
    assert_signed_as_ordered(terms, orders, list(signer.sign_devices(terms, orders)))


@contextlib.contextmanager
def counted_replies() -> Iterator[list[int]]:
    """The number of certificates in each helper reply taken while in use."""
    replies: list[int] = []
    original = SharedSigner._take_reply

    def counting(fields: list[bytes], number: int, indexes: list[int], *rest: Any) -> None:
        original(fields, number, indexes, *rest)
        replies.append(len(indexes))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SharedSigner, "_take_reply", staticmethod(counting))
        yield replies


def test_the_helper_signs_part_of_a_bulk(terms: BulkTerms, shared: SharedSigner) -> None:
    orders = orders_for(60)
    with counted_replies() as replies:
        signed = list(shared.sign_devices(terms, orders))
    assert_signed_as_ordered(terms, orders, signed)
    assert 0 < sum(replies) < len(orders), "the helper signed none or all of the bulk"


def test_concurrent_bulks_are_each_signed_whole_and_in_order(
    terms: BulkTerms, shared: SharedSigner
) -> None:
    bulks = [orders_for(40) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda orders: list(shared.sign_devices(terms, orders)), bulks))
    for orders, signed in zip(bulks, results, strict=True):
        assert_signed_as_ordered(terms, orders, signed)


def test_bulks_below_the_threshold_are_signed_in_process(
    terms: BulkTerms, make_signer: Callable[..., SharedSigner]
) -> None:
    signer = make_signer(min_shared=10)
    assert signer.wait_until_ready(timeout=60)
    with counted_replies() as replies:
        for orders in (orders_for(5), orders_for(0)[:1]):
            assert_signed_as_ordered(terms, orders, list(signer.sign_devices(terms, orders)))
        assert replies == []
        orders = orders_for(20)
        assert_signed_as_ordered(terms, orders, list(signer.sign_devices(terms, orders)))
        assert replies, "a bulk over the threshold did not share"


def test_a_bulk_goes_on_in_process_when_the_helper_was_killed(
    terms: BulkTerms, shared: SharedSigner
) -> None:
    pid = shared.helper_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert shared._helper is not None
    shared._helper.process.wait(timeout=10)
    orders = orders_for(20)
    assert_signed_as_ordered(terms, orders, list(shared.sign_devices(terms, orders)))
    # a new helper is started for the next bulk
    new_pid = shared.helper_pid()
    assert new_pid is not None and new_pid != pid


def fake_helper(body: str) -> list[str]:
    """A helper that says ready, then does `body` (Python) instead of signing."""
    ready = signing_helper.frame([signing_helper.READY])
    script = f"import os, sys, time\nos.write(1, {ready!r})\n{body}\n"
    return [sys.executable, "-c", script]


@pytest.mark.parametrize(
    ("body", "warning"),
    [
        ("os.read(0, 1)", "exited|took no more work"),  # stops once work arrives
        ("time.sleep(60)", "did not answer"),  # stalls
        ("os.read(0, 1); os.write(1, b'\\0\\0\\0\\1x'); time.sleep(60)", "malformed"),
        ("os.read(0, 1); os.write(1, {frame!r}); time.sleep(60)", "out of turn"),
    ],
)
def test_a_helper_that_fails_part_way_leaves_the_bulk_to_this_process(
    body: str,
    warning: str,
    terms: BulkTerms,
    caplog: pytest.LogCaptureFixture,
    make_signer: Callable[..., SharedSigner],
) -> None:
    signer = make_signer(
        command=fake_helper(body.format(frame=signing_helper.frame([b"99"]))),
        min_shared=2,
        chunk=4,
        reply_timeout=1.0,
    )
    assert signer.wait_until_ready(timeout=60)
    orders = orders_for(20)
    with caplog.at_level(logging.WARNING, logger="chalicelib.signing"):
        signed = list(signer.sign_devices(terms, orders))
    assert_signed_as_ordered(terms, orders, signed)
    assert any(re.search(warning, message) for message in caplog.messages), caplog.messages
    assert signer.helper_pid() is None  # stopped; the next bulk starts another


def test_a_helper_that_cannot_start_leaves_signing_to_this_process(
    terms: BulkTerms, caplog: pytest.LogCaptureFixture, make_signer: Callable[..., SharedSigner]
) -> None:
    signer = make_signer(command=["/nonexistent/python"], min_shared=2)
    orders = orders_for(5)
    with caplog.at_level(logging.WARNING, logger="chalicelib.signing"):
        assert_signed_as_ordered(terms, orders, list(signer.sign_devices(terms, orders)))
        assert_signed_as_ordered(terms, orders, list(signer.sign_devices(terms, orders)))
    assert any("could not start" in message for message in caplog.messages)


def test_the_helper_survives_sigint_and_ends_when_its_input_closes(
    terms: BulkTerms, shared: SharedSigner
) -> None:
    helper = shared._helper
    assert helper is not None
    helper.process.send_signal(signal.SIGINT)
    orders = orders_for(30)
    with counted_replies() as replies:
        assert_signed_as_ordered(terms, orders, list(shared.sign_devices(terms, orders)))
    assert replies and shared._helper is helper, "the helper did not go on after SIGINT"
    assert helper.process.stdin is not None
    helper.process.stdin.close()
    assert helper.process.wait(timeout=10) == 0


def test_an_exception_part_way_stops_the_helper_so_no_later_bulk_reads_its_replies(
    terms: BulkTerms, shared: SharedSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    original = signing.sign_device

    def failing(*args: Any) -> SignedDevice:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise MemoryError("in the middle of a bulk")
        return original(*args)

    monkeypatch.setattr(signing, "sign_device", failing)
    with pytest.raises(MemoryError):
        list(shared.sign_devices(terms, orders_for(40)))
    assert shared.helper_pid() is None  # the replies it owed went with it
    monkeypatch.setattr(signing, "sign_device", original)
    assert shared.wait_until_ready(timeout=60)
    orders = orders_for(40)
    with counted_replies() as replies:
        assert_signed_as_ordered(terms, orders, list(shared.sign_devices(terms, orders)))
    assert replies


def test_a_caller_that_stops_part_way_frees_the_signer_for_the_next_bulk(
    terms: BulkTerms, shared: SharedSigner
) -> None:
    """The server stores a bulk as it comes out; a failed write closes the rest unsigned."""
    orders = orders_for(40)
    with counted_replies() as replies:
        signed = shared.sign_devices(terms, orders)
        first = [next(signed) for _ in range(3)]
        signed.close()
    assert_signed_as_ordered(terms, orders[:3], first)
    assert sum(replies) < len(orders) - 3, "the rest of the bulk was signed anyway"
    assert shared.helper_pid() is None  # the replies it still owed went with it
    assert shared.wait_until_ready(timeout=60)
    with counted_replies() as replies:
        assert_signed_as_ordered(terms, orders, list(shared.sign_devices(terms, orders)))
    assert replies, "the next bulk did not share: the signer stayed claimed"


def test_helpers_that_never_become_ready_are_given_up(
    terms: BulkTerms, caplog: pytest.LogCaptureFixture, make_signer: Callable[..., SharedSigner]
) -> None:
    signer = make_signer(command=[sys.executable, "-c", "pass"], min_shared=2)
    started = []
    with caplog.at_level(logging.WARNING, logger="chalicelib.signing"):
        for _ in range(signing.MAX_FAILED_STARTS + 2):
            orders = orders_for(3)
            assert_signed_as_ordered(terms, orders, list(signer.sign_devices(terms, orders)))
            if signer._helper is not None:
                started.append(signer._helper.process.pid)
                signer._helper.process.wait(timeout=10)
    assert len(started) == signing.MAX_FAILED_STARTS
    assert signer.helper_pid() is None
    assert any("never became ready" in message for message in caplog.messages)


@pytest.mark.parametrize("ca_key_type", [KeyType.EC_P384, KeyType.RSA_2048, KeyType.ED25519])
def test_the_helper_signs_what_this_process_would(ca_key_type: KeyType) -> None:
    """Terms and orders cross the pipe whole: `serve` (the helper's loop) on in-memory streams
    signs certificates equal to in-process ones but for serial, signature and generated keys."""
    details = SubjectDetails(country="DE", state="Bayern", organization="Acme Devices")
    terms = authority_terms(ca_key_type, details, timedelta(hours=7), KeyType.EC_P384)
    ca = terms.authority.certificate
    orders = orders_for(2)
    requests = signing_helper.terms_frame(terms) + signing_helper.orders_frame(7, orders)
    replies = io.BytesIO()
    signing_helper.serve(io.BytesIO(requests), replies)

    stream = io.BytesIO(replies.getvalue())
    assert signing_helper.read_frame(stream) == [b"ready"]
    reply = signing_helper.read_frame(stream)
    assert reply is not None and reply[0] == b"7"
    assert signing_helper.read_frame(stream) is None
    for position, order in enumerate(orders):
        certificate = x509.load_der_x509_certificate(reply[1 + 2 * position])
        expected = signing.sign_device(terms, order).certificate
        certificate.verify_directly_issued_by(ca)
        assert certificate.subject == expected.subject
        assert certificate.issuer == expected.issuer == ca.subject
        assert certificate.not_valid_before_utc == expected.not_valid_before_utc
        assert certificate.not_valid_after_utc == expected.not_valid_after_utc
        assert certificate.signature_hash_algorithm == expected.signature_hash_algorithm
        key_pem = reply[2 + 2 * position]
        if order.material is None:
            assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
            assert isinstance(certificate.public_key(), type(expected.public_key()))
            skip: tuple[type, ...] = (x509.SubjectKeyIdentifier,)
        else:
            assert key_pem == b""
            assert certificate.public_key() == expected.public_key()
            skip = ()
        assert [e for e in certificate.extensions if not isinstance(e.value, skip)] == [
            e for e in expected.extensions if not isinstance(e.value, skip)
        ]

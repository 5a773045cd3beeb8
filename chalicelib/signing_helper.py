"""The signing helper process (`python -m chalicelib.signing_helper`) and the wire format it
shares with the server's `signing.SharedSigner`.

Messages are frames: a 4-byte big-endian length, then a count of fields and each field with its
own 4-byte length. The server sends the bulk's terms (the CA's certificate and key, the validity,
the key type, the subject details) once per bulk, then orders messages, each numbered; the helper
answers each orders message with one reply carrying the same number and, per order, the signed
certificate (DER) and the generated key (PEM, empty when a CSR brought the public key). It says
`ready` once at start-up and exits when its input ends.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import BinaryIO

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from chalicelib import pki
from chalicelib.issuance import (
    BulkTerms,
    DeviceOrder,
    KeyMaterial,
    SignedDevice,
    sign_device,
)
from chalicelib.model import KeyType, SubjectDetails

HEADER = struct.Struct(">I")
READY = b"ready"
TERMS = b"terms"
ORDERS = b"orders"


def frame(fields: Sequence[bytes]) -> bytes:
    parts = [HEADER.pack(len(fields))]
    for value in fields:
        parts += [HEADER.pack(len(value)), value]
    payload = b"".join(parts)
    return HEADER.pack(len(payload)) + payload


def unpack_fields(payload: bytes) -> list[bytes]:
    (count,), offset, fields = HEADER.unpack_from(payload), HEADER.size, []
    for _ in range(count):
        (size,) = HEADER.unpack_from(payload, offset)
        offset += HEADER.size
        fields.append(payload[offset : offset + size])
        offset += size
    return fields


def terms_frame(terms: BulkTerms) -> bytes:
    subject = terms.subject
    names = (subject.country, subject.state, subject.organization)
    return frame([
        TERMS,
        terms.authority.certificate.public_bytes(serialization.Encoding.DER),
        pki.private_key_to_pem(terms.authority.private_key).encode("ascii"),
        terms.validity.not_before.isoformat().encode(),
        terms.validity.not_after.isoformat().encode(),
        terms.key_type.value.encode(),
        *((value or "").encode() for value in names),
    ])  # fmt: skip


def read_terms(fields: list[bytes]) -> BulkTerms:
    certificate, key, not_before, not_after, key_type, country, state, organization = fields
    return BulkTerms(
        pki.SigningAuthority(
            x509.load_der_x509_certificate(certificate),
            pki.load_trusted_private_key(key.decode("ascii"), None),
        ),
        pki.Validity(
            datetime.fromisoformat(not_before.decode()),
            datetime.fromisoformat(not_after.decode()),
        ),
        SubjectDetails(
            country.decode() or None, state.decode() or None, organization.decode() or None
        ),
        KeyType(key_type.decode()),
    )


def orders_frame(number: int, orders: Sequence[DeviceOrder]) -> bytes:
    """Orders message `number`; the helper's reply carries the same number."""
    fields = [ORDERS, str(number).encode()]
    for order in orders:
        public_key = b""
        if order.material is not None:
            public_key = order.material.public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        fields += [order.device_id.encode(), order.fqdn.encode(), public_key]
    return frame(fields)


def read_orders(fields: list[bytes]) -> list[DeviceOrder]:
    orders = []
    for start in range(0, len(fields), 3):
        device_id, fqdn, public_key_der = fields[start : start + 3]
        material = None
        if public_key_der:
            public_key = serialization.load_der_public_key(public_key_der)
            key_type = pki.key_type_of(public_key)
            if key_type is None:
                raise ValueError("an order's public key is of a kind this service does not sign")
            material = KeyMaterial(public_key, key_type, None)
        orders.append(DeviceOrder(device_id.decode(), fqdn.decode(), material))
    return orders


def signed_fields(signed: Sequence[SignedDevice]) -> list[bytes]:
    fields = []
    for device in signed:
        fields += [
            device.certificate_der,
            (device.private_key_pem or "").encode("ascii"),
        ]
    return fields


def read_frame(stream: BinaryIO) -> list[bytes] | None:
    """The next frame, or None at the end of the input."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    payload = stream.read(size)
    if len(payload) < size:
        return None
    return unpack_fields(payload)


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    """Sign the orders read from `requests` until it ends, one reply per orders message."""
    replies.write(frame([READY]))
    replies.flush()
    terms: BulkTerms | None = None
    while (message := read_frame(requests)) is not None:
        kind = message[0]
        if kind == TERMS:
            terms = read_terms(message[1:])
        elif kind == ORDERS and terms is not None:
            number, orders = message[1], read_orders(message[2:])
            signed = [sign_device(terms, order) for order in orders]
            replies.write(frame([number, *signed_fields(signed)]))
            replies.flush()
        else:
            raise ValueError(f"unexpected message {kind!r}")


def main() -> int:
    # The server's process group gets Ctrl-C, this one does not; ignoring it besides keeps a
    # signal sent by hand from ending a bulk's helper part-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print cannot break the protocol
    try:
        serve(sys.stdin.buffer, replies)
        replies.close()
    except BrokenPipeError:
        os._exit(0)  # the server has gone: nothing is left to say, nor anyone to say it to
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CA keys held by a key store (AWS KMS, a PKCS#11 token): private-key objects whose `sign()`
asks the store, so that cryptography's own builders sign certificates and CRLs with them.

`CertificateBuilder.sign` and `CertificateRevocationListBuilder.sign` take any
`ec.EllipticCurvePrivateKey` or `rsa.RSAPrivateKey`; they hand the DER to be signed and the
algorithm to the key's `sign()` and take back the signature in the X.509 encoding (DER
`ECDSA-Sig-Value`, PKCS #1 v1.5 bytes). Nothing else of a private key is possible here: such a
key cannot be serialised, exchanged or decrypted with, and never leaves its store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

Buffer = bytes | bytearray | memoryview
SignWith = Callable[[bytes, hashes.HashAlgorithm], bytes]
"""The store's signing: (the DER to sign, its hash algorithm) -> the signature as X.509 encodes
it (ECDSA: DER `ECDSA-Sig-Value`; RSA: PKCS #1 v1.5)."""


class KeyNeverLeavesItsStore(TypeError):
    """Something asked a held key for what only a key in memory has (its bytes, numbers)."""


def _refuse(what: str) -> NoReturn:
    raise KeyNeverLeavesItsStore(f"{what}: a CA key held by a key store never leaves it")


class HeldEcKey(ec.EllipticCurvePrivateKey):
    """An EC CA key in a key store: ECDSA with the hash the builder asks for."""

    def __init__(
        self, public_key: ec.EllipticCurvePublicKey, sign_with: SignWith, key_id: str
    ) -> None:
        self._public_key = public_key
        self._sign_with = sign_with
        self.key_id = key_id

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA) or not isinstance(
            signature_algorithm.algorithm, hashes.HashAlgorithm
        ):
            _refuse(f"signing with {signature_algorithm!r}")
        return self._sign_with(bytes(data), signature_algorithm.algorithm)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _refuse("key exchange")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        _refuse("private numbers")

    def private_bytes(self, *arguments: Any) -> bytes:
        _refuse("serialisation")

    def __copy__(self) -> HeldEcKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HeldEcKey:
        return self


class HeldRsaKey(rsa.RSAPrivateKey):
    """An RSA CA key in a key store: PKCS #1 v1.5 signatures, as the service's profiles use."""

    def __init__(self, public_key: rsa.RSAPublicKey, sign_with: SignWith, key_id: str) -> None:
        self._public_key = public_key
        self._sign_with = sign_with
        self.key_id = key_id

    def sign(self, data: Buffer, padding: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        if not isinstance(padding, _PKCS1V15) or not isinstance(algorithm, hashes.HashAlgorithm):
            _refuse(f"signing with {padding!r}")
        return self._sign_with(bytes(data), algorithm)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    @property
    def key_size(self) -> int:
        return self._public_key.key_size

    def decrypt(self, ciphertext: bytes, padding: padding.AsymmetricPadding) -> bytes:
        _refuse("decryption")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        _refuse("private numbers")

    def private_bytes(self, *arguments: Any) -> bytes:
        _refuse("serialisation")

    def __copy__(self) -> HeldRsaKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> HeldRsaKey:
        return self


_PKCS1V15 = padding.PKCS1v15


def held_key(
    public_key: CertificatePublicKeyTypes, sign_with: SignWith, key_id: str
) -> CertificateIssuerPrivateKeyTypes:
    """The private-key object of a held key with this public key."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return HeldEcKey(public_key, sign_with, key_id)
    if isinstance(public_key, rsa.RSAPublicKey):
        return HeldRsaKey(public_key, sign_with, key_id)
    raise KeyNeverLeavesItsStore(f"a held key of kind {type(public_key).__name__} cannot sign here")


def is_held(private_key: object) -> bool:
    """Whether a key is held by a key store (it cannot be copied to another process)."""
    return held_key_id(private_key) is not None


def held_key_id(private_key: object) -> str | None:
    """The key store's name of a held key; None for a key in memory (or none)."""
    return private_key.key_id if isinstance(private_key, (HeldEcKey, HeldRsaKey)) else None


def digest(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
    """The hash a store signs when it is handed a digest rather than the data."""
    hashed = hashes.Hash(algorithm)
    hashed.update(data)
    return hashed.finalize()

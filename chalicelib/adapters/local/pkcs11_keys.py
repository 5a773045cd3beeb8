"""CA keys in a PKCS#11 token (SoftHSM2 in the tests and the README; any module works), through
python-pkcs11.

Each CA key pair is generated inside the token as token objects: the private key sensitive and
not extractable (`CKA_SENSITIVE` true, `CKA_EXTRACTABLE` false), so its value never leaves the
token, and may only sign. A key is named by a random `CKA_ID` (the `key_id` its CA's record
keeps, in hex) and labelled `<stage>/<ca>` for people. Each process opens its own session, after
a fork too (PKCS#11 sessions are not inherited), and signs one signature at a time through it.
ECDSA is the raw mechanism over a digest made here (`CKM_ECDSA`, whose `r || s` becomes the
DER X.509 uses); RSA is `CKM_SHA<n>_RSA_PKCS`.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from chalicelib.errors import StorageError
from chalicelib.held_keys import SignWith, digest, held_key
from chalicelib.model import KeyType
from chalicelib.ports.key_store import PKCS11_KEY_STORE

_CURVES = {KeyType.EC_P256: "secp256r1", KeyType.EC_P384: "secp384r1"}
_RSA_BITS = {KeyType.RSA_2048: 2048, KeyType.RSA_3072: 3072, KeyType.RSA_4096: 4096}
LABEL_LENGTH = 64


class Pkcs11KeyStore:
    name = PKCS11_KEY_STORE
    max_bulk: int | None = None

    def __init__(self, module: str, token_label: str, pin: str, stage: str) -> None:
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._stage = stage
        self._session: Any = None
        self._pid = 0
        self._objects: dict[tuple[str, Any], Any] = {}  # this session's handles, by id and class
        self._lock = threading.Lock()

    # The port ---------------------------------------------------------------------------

    def create_key(self, ca_fqdn: str, key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
        import pkcs11
        from pkcs11 import Attribute
        from pkcs11.util.ec import encode_named_curve_parameters

        key_id = secrets.token_bytes(16)
        label = f"{self._stage}/{ca_fqdn}"[:LABEL_LENGTH]
        private = {
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
        }
        with self._lock:
            session = self._open()
            try:
                if key_type in _CURVES:
                    parameters = session.create_domain_parameters(
                        pkcs11.KeyType.EC,
                        {Attribute.EC_PARAMS: encode_named_curve_parameters(_CURVES[key_type])},
                        local=True,
                    )
                    parameters.generate_keypair(
                        store=True, label=label, id=key_id, private_template=private
                    )
                elif key_type in _RSA_BITS:
                    session.generate_keypair(
                        pkcs11.KeyType.RSA, _RSA_BITS[key_type], store=True, label=label,
                        id=key_id, private_template=private,
                    )  # fmt: skip
                else:
                    raise StorageError(f"a PKCS#11 CA key cannot be {key_type.value}")
            except pkcs11.PKCS11Error as err:
                raise StorageError(
                    f"the PKCS#11 token made no key for CA {ca_fqdn}: {err!r}"
                ) from err
        return self.load_key(key_id.hex())

    def load_key(self, key_id: str) -> CertificateIssuerPrivateKeyTypes:
        public_key = self.public_key(key_id)
        return held_key(public_key, self._signer(key_id, public_key), key_id)

    def discard_key(self, key_id: str) -> None:
        import pkcs11
        from pkcs11 import Attribute

        with self._lock:
            session = self._open()
            try:
                for found in list(session.get_objects({Attribute.ID: bytes.fromhex(key_id)})):
                    found.destroy()
                self._objects = {}
            except pkcs11.PKCS11Error as err:
                raise StorageError(f"PKCS#11 key {key_id} was not removed: {err!r}") from err

    # What fsck and the tests read ----------------------------------------------------------

    def public_key(self, key_id: str) -> ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        import pkcs11
        from pkcs11 import ObjectClass
        from pkcs11.util.ec import encode_ec_public_key
        from pkcs11.util.rsa import encode_rsa_public_key

        with self._lock:
            try:
                found = self._object(key_id, ObjectClass.PUBLIC_KEY)
                if found.key_type == pkcs11.KeyType.EC:
                    der = encode_ec_public_key(found)
                else:
                    der = encode_rsa_public_key(found)
            except pkcs11.PKCS11Error as err:
                raise StorageError(f"PKCS#11 key {key_id} cannot be read: {err!r}") from err
        public_key = serialization.load_der_public_key(der)
        if not isinstance(public_key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
            raise StorageError(f"PKCS#11 key {key_id} is no EC or RSA key")
        return public_key

    def attributes(self, key_id: str) -> dict[str, bool]:
        """The private key's `extractable` and `sensitive` flags, as the token states them."""
        from pkcs11 import Attribute, ObjectClass

        with self._lock:
            found = self._object(key_id, ObjectClass.PRIVATE_KEY)
            return {
                "extractable": bool(found[Attribute.EXTRACTABLE]),
                "sensitive": bool(found[Attribute.SENSITIVE]),
            }

    def key_ids(self) -> set[str]:
        """The ids of every private key in the token labelled for this stage."""
        from pkcs11 import Attribute, ObjectClass

        with self._lock:
            session = self._open()
            return {
                bytes(found[Attribute.ID]).hex()
                for found in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
                if str(found[Attribute.LABEL]).startswith(f"{self._stage}/")
            }

    # Inside --------------------------------------------------------------------------------

    def _signer(self, key_id: str, public_key: Any) -> SignWith:
        import pkcs11
        from pkcs11 import Mechanism, ObjectClass

        rsa_mechanisms = {
            32: Mechanism.SHA256_RSA_PKCS,
            48: Mechanism.SHA384_RSA_PKCS,
            64: Mechanism.SHA512_RSA_PKCS,
        }
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)

        def sign_with(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
            with self._lock:
                try:
                    private = self._object(key_id, ObjectClass.PRIVATE_KEY)
                    if is_rsa:
                        return bytes(
                            private.sign(data, mechanism=rsa_mechanisms[algorithm.digest_size])
                        )
                    raw = bytes(private.sign(digest(data, algorithm), mechanism=Mechanism.ECDSA))
                except pkcs11.PKCS11Error as err:
                    raise StorageError(f"PKCS#11 key {key_id} did not sign: {err!r}") from err
            half = len(raw) // 2
            return encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )

        return sign_with

    def _object(self, key_id: str, object_class: Any) -> Any:
        """The token's object of that id and class (the caller holds the lock)."""
        session = self._open()
        found = self._objects.get((key_id, object_class))
        if found is None:
            found = session.get_key(object_class=object_class, id=bytes.fromhex(key_id))
            self._objects[key_id, object_class] = found
        return found

    def _open(self) -> Any:
        """This process's logged-in session (the caller holds the lock)."""
        if self._session is not None and self._pid == os.getpid():
            return self._session
        import pkcs11

        try:
            token = pkcs11.lib(self._module).get_token(token_label=self._token_label)
            try:
                self._session = token.open(user_pin=self._pin, rw=True)
            except pkcs11.UserAlreadyLoggedIn:  # a login is the process's, for every session
                self._session = token.open(rw=True)
            self._objects = {}
        except (pkcs11.PKCS11Error, RuntimeError, OSError) as err:
            raise StorageError(
                f"the PKCS#11 token {self._token_label!r} of {self._module} cannot be opened "
                f"(PKCS11_MODULE, PKCS11_TOKEN, PKCS11_PIN; make hsm-token): {err!r}"
            ) from err
        self._pid = os.getpid()
        return self._session

"""CaKeyStore port: where a CA's private key is made and kept when it is not a document of the
store (`file`): AWS KMS on the AWS backend, a PKCS#11 token locally.

A key store makes the key inside itself and signs with it there; the service only ever holds
its public half and a private-key object whose `sign()` asks the store (chalicelib.held_keys).
The record of such a CA names the store and the key (`key_store`, `key_id`) and holds no key.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from chalicelib.model import FILE_KEY, KeyType

FILE_KEY_STORE = FILE_KEY
KMS_KEY_STORE = "kms"
PKCS11_KEY_STORE = "pkcs11"
KEY_STORES = (FILE_KEY_STORE, KMS_KEY_STORE, PKCS11_KEY_STORE)
"""Every value of a CA's `key_store`; which of them a deployment offers depends on its backend
and settings (chalicelib.config)."""


class CaKeyStore(Protocol):
    name: str  # one of KEY_STORES, not FILE_KEY_STORE
    max_bulk: int | None
    """The most certificates one request may have such a CA sign (each is a request to the
    store, within its rate); None: the API's own limits."""

    def create_key(self, ca_fqdn: str, key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
        """A new key of `key_type` for the CA `ca_fqdn`, made inside the store and never
        exportable; the returned object's `key_id` names it for `load_key`."""

    def load_key(self, key_id: str) -> CertificateIssuerPrivateKeyTypes:
        """The key `key_id` names; StorageError when the store does not have it."""

    def discard_key(self, key_id: str) -> None:
        """Remove (or schedule the removal of) a key no CA was stored with."""


@runtime_checkable
class ListsKeys(Protocol):
    """A key store that can list the keys it holds for this stage (PKCS#11; a KMS key's
    listing is the account's, and `make teardown-aws` finds a stage's by its aliases)."""

    def key_ids(self) -> set[str]: ...

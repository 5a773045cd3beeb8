"""CA keys in AWS KMS: one asymmetric SIGN_VERIFY key per CA, made and used inside KMS.

Each key carries the stage's app and stage tags and a `ca` tag, and an alias
`alias/<app>/<stage>/<ca>-<key id>` (dots of the CA's name become underscores, as aliases
allow no dots). Its key policy lets the stage's API role, and no one else, `Sign` and
`GetPublicKey`; the account keeps key administration (describe, tag, schedule deletion, change
the policy), so that no key becomes unmanageable, but not the use of the key. The API role may
not change a policy, so the key is created past KMS's check that its creator could
(`BypassPolicyLockoutSafetyCheck`); the account's statement is what that check protects.

A signature is one `Sign` call: the DER to sign as the message (`MessageType=RAW`) up to KMS's
4096 bytes, its digest (`DIGEST`) above that (a long CRL). KMS's request quotas are the
account's: the client backs off and slows down on throttling (botocore's adaptive retries) and
bulks under a KMS CA are sized for it (MAX_BULK_UNDER_KMS).
"""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from chalicelib.adapters.aws.errors import aws_error_code, aws_errors
from chalicelib.errors import StorageError
from chalicelib.held_keys import SignWith, digest, held_key
from chalicelib.model import KeyType
from chalicelib.ownership import Ownership
from chalicelib.ports.key_store import KMS_KEY_STORE

KEY_SPECS = {
    KeyType.EC_P256: "ECC_NIST_P256",
    KeyType.EC_P384: "ECC_NIST_P384",
    KeyType.RSA_2048: "RSA_2048",
    KeyType.RSA_3072: "RSA_3072",
    KeyType.RSA_4096: "RSA_4096",
}
"""Every CA key type; ED25519 is no CA key type (chalicelib.kinds)."""
RAW_MESSAGE_LIMIT = 4096
"""The longest message KMS signs as it is (`MessageType=RAW`)."""
CA_TAG = "ca"
PENDING_WINDOW_DAYS = 7
"""KMS's shortest wait before a key scheduled for deletion is gone (CancelKeyDeletion restores
it until then)."""
ADMINISTRATION = (
    "kms:CreateAlias",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "kms:PutKeyPolicy",
    "kms:ListResourceTags",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:ListAliases",
    "kms:DeleteAlias",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:DisableKey",
    "kms:EnableKey",
)
"""What the account may do with a CA key: everything but use it."""
USE = ("kms:Sign", "kms:GetPublicKey")
_ALIAS_UNSAFE = re.compile(r"[^a-zA-Z0-9/_-]")


def signing_algorithm(rsa_key: bool, algorithm: hashes.HashAlgorithm) -> str:
    bits = algorithm.digest_size * 8
    if rsa_key:
        return f"RSASSA_PKCS1_V1_5_SHA_{bits}"
    return f"ECDSA_SHA_{bits}"


def key_policy(account_id: str, signer_role_arn: str) -> dict[str, Any]:
    """The policy of every CA key: the API role uses it, the account administers it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersButNeverUses",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": list(ADMINISTRATION),
                "Resource": "*",
            },
            {
                "Sid": "OnlyTheStageApiSigns",
                "Effect": "Allow",
                "Principal": {"AWS": signer_role_arn},
                "Action": list(USE),
                "Resource": "*",
            },
        ],
    }


def alias_prefix(ownership: Ownership) -> str:
    """Every alias of the stage's CA keys starts so (make teardown-aws finds them by it)."""
    return f"alias/{ownership.app}/{ownership.stage}/"


MAX_BULK_UNDER_KMS = 250
"""Devices one request may have a KMS CA sign: each is a `Sign` call, and the account's rate for
them (AWS documents per-second quotas for ECC and RSA signing, shared by every stage) bounds a
bulk more than its CPU does. `make bench` models this bulk against the function's timeout
(bench/key_stores.py)."""


class KmsKeyStore:
    name = KMS_KEY_STORE
    max_bulk: int | None = MAX_BULK_UNDER_KMS

    def __init__(self, client: Any, ownership: Ownership, signer_role_arn: str) -> None:
        self._client = client
        self._ownership = ownership
        self._signer_role_arn = signer_role_arn

    def create_key(self, ca_fqdn: str, key_type: KeyType) -> CertificateIssuerPrivateKeyTypes:
        account_id = self._signer_role_arn.split(":")[4]
        labels = {**self._ownership.labels(), CA_TAG: ca_fqdn}
        tags = [{"TagKey": key, "TagValue": value} for key, value in labels.items()]
        try:
            metadata = self._client.create_key(
                KeySpec=KEY_SPECS[key_type],
                KeyUsage="SIGN_VERIFY",
                Description=f"{self._ownership.app} {self._ownership.stage}: CA {ca_fqdn}",
                Policy=json.dumps(key_policy(account_id, self._signer_role_arn)),
                BypassPolicyLockoutSafetyCheck=True,
                Tags=tags,
            )["KeyMetadata"]
        except aws_errors() as err:
            raise StorageError(f"AWS KMS did not make a key for CA {ca_fqdn}: {err}") from err
        name = _ALIAS_UNSAFE.sub("_", ca_fqdn)[:160]  # dots too: aliases take none
        try:
            self._client.create_alias(
                AliasName=f"{alias_prefix(self._ownership)}{name}-{metadata['KeyId'][:8]}",
                TargetKeyId=metadata["KeyId"],
            )
        except aws_errors() as err:  # a key without its alias is one teardown would not find
            self.discard_key(metadata["Arn"])
            raise StorageError(f"AWS KMS did not alias the key of CA {ca_fqdn}: {err}") from err
        return self.load_key(metadata["Arn"])

    def load_key(self, key_id: str) -> CertificateIssuerPrivateKeyTypes:
        try:
            public_der = self._client.get_public_key(KeyId=key_id)["PublicKey"]
        except aws_errors() as err:
            raise StorageError(f"AWS KMS key {key_id} cannot be read: {err}") from err
        public_key = serialization.load_der_public_key(public_der)
        if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise StorageError(f"AWS KMS key {key_id} is no EC or RSA key")
        rsa_key = isinstance(public_key, rsa.RSAPublicKey)
        return held_key(public_key, self._signer(key_id, rsa_key), key_id)

    def discard_key(self, key_id: str) -> None:
        try:
            self._client.schedule_key_deletion(  # by its ID: the stage's account is the key's
                KeyId=key_id.rsplit("/", 1)[-1], PendingWindowInDays=PENDING_WINDOW_DAYS
            )
        except aws_errors() as err:
            if aws_error_code(err) != "NotFoundException":
                raise StorageError(f"AWS KMS key {key_id} was not scheduled for deletion") from err

    def _signer(self, key_id: str, rsa_key: bool) -> SignWith:
        client = self._client

        def sign_with(data: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
            message, message_type = data, "RAW"
            if len(data) > RAW_MESSAGE_LIMIT:
                message, message_type = digest(data, algorithm), "DIGEST"
            try:
                return client.sign(
                    KeyId=key_id,
                    Message=message,
                    MessageType=message_type,
                    SigningAlgorithm=signing_algorithm(rsa_key, algorithm),
                )["Signature"]
            except aws_errors() as err:
                raise StorageError(f"AWS KMS key {key_id} did not sign: {err}") from err

        return sign_with

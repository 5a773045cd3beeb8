"""The certificate store on S3: one object per document, created with `IfNoneMatch="*"`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from chalicelib.adapters.aws.errors import aws_error_code, aws_errors
from chalicelib.adapters.documents import DocumentStore
from chalicelib.errors import StorageError
from chalicelib.ports.store import CertificateState

WRITERS = 16  # concurrent S3 writes of one bulk


class S3Store(DocumentStore):
    """One S3 object per document, created with `IfNoneMatch="*"` so it is never replaced."""

    writers = WRITERS  # 1000 PutObject calls one after the other would outlast API Gateway's 29 s

    def __init__(self, client: Any, bucket: str, kms_key_id: str | None = None) -> None:
        self._client = client
        self._bucket = bucket
        self._encryption = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        )

    def certificate_states(self, names: Sequence[tuple[str, str]]) -> list[CertificateState]:
        """Every look-up at once (two listings per certificate): a chain's state costs the
        time of one S3 call, not of one per CA."""
        if len(names) < 2:
            return super().certificate_states(names)
        from concurrent.futures import ThreadPoolExecutor  # off the import path

        with ThreadPoolExecutor(min(2 * len(names), WRITERS), "store-state") as pool:
            generations = [pool.submit(self.current_generation, fqdn) for _, fqdn in names]
            revoked = [pool.submit(self.is_revoked, issuer, fqdn) for issuer, fqdn in names]
            return [
                CertificateState(generation.result(), revocation.result())
                for generation, revocation in zip(generations, revoked, strict=True)
            ]

    def _create(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=data,
                ContentType="application/json",
                IfNoneMatch="*",
                **self._encryption,
            )
        except aws_errors() as err:
            if aws_error_code(err) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(key) from err
            raise StorageError(f"could not write {key}: {err}") from err

    def _read(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
        except aws_errors() as err:
            if aws_error_code(err) in ("NoSuchKey", "404"):
                return None
            raise StorageError(f"could not read {key}: {err}") from err

    def _exists(self, key: str) -> bool:
        """Listing, not HeadObject: a HEAD on a missing bucket is a bare 404, like a missing key."""
        try:
            response = self._client.list_objects_v2(Bucket=self._bucket, Prefix=key, MaxKeys=1)
        except aws_errors() as err:
            raise StorageError(f"could not look up {key}: {err}") from err
        return any(entry["Key"] == key for entry in response.get("Contents", []))

    def _keys(self, prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix):
                for entry in page.get("Contents", []):
                    yield entry["Key"]
        except aws_errors() as err:
            raise StorageError(f"could not list {prefix}: {err}") from err

    def _delete(self, key: str) -> None:
        """On the versioned bucket this adds a delete marker; the bucket's lifecycle rule
        expires the version it hides (terraform/s3.tf)."""
        try:
            self._client.delete_object(Bucket=self._bucket, Key=key)
        except aws_errors() as err:
            raise StorageError(f"could not remove {key}: {err}") from err

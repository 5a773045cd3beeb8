"""CertificateStore port and its adapters.

One object per certificate (`certificates/<fqdn>.json`), written once: a second write of the
same FQDN raises AlreadyExists and leaves the first object untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from chalicelib.aws import aws_error_code
from chalicelib.errors import AlreadyExists, NotFound, StorageError
from chalicelib.model import CertificateRecord

OBJECT_PREFIX = "certificates/"
_TEMP_PREFIX = ".tmp-"


def object_key(fqdn: str) -> str:
    return f"{OBJECT_PREFIX}{fqdn}.json"


def _check_fqdn_is_safe(fqdn: str) -> None:
    """Stores take validated FQDNs; refuse anything that could step out of the folder anyway."""
    if not fqdn or "/" in fqdn or "\\" in fqdn or fqdn.startswith("."):
        raise NotFound(f"certificate {fqdn!r} not found")


class CertificateStore(Protocol):
    def put_certificate(self, record: CertificateRecord) -> None:
        """Write a new certificate; AlreadyExists if the FQDN is taken (nothing overwritten)."""

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        """The stored certificate; NotFound if there is none."""

    def exists(self, fqdn: str) -> bool: ...

    def iter_certificates(self) -> Iterator[CertificateRecord]:
        """Every stored certificate, in no particular order (for reconciliation)."""


class InMemoryStore:
    """For unit tests: same contract, kept in a dict."""

    def __init__(self) -> None:
        self._documents: dict[str, str] = {}
        self._lock = threading.Lock()

    def put_certificate(self, record: CertificateRecord) -> None:
        document = json.dumps(record.to_document())
        with self._lock:
            if record.fqdn in self._documents:
                raise AlreadyExists(f"certificate {record.fqdn} already exists")
            self._documents[record.fqdn] = document

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        try:
            document = self._documents[fqdn]
        except KeyError as err:
            raise NotFound(f"certificate {fqdn} not found") from err
        return CertificateRecord.from_document(json.loads(document))

    def exists(self, fqdn: str) -> bool:
        return fqdn in self._documents

    def iter_certificates(self) -> Iterator[CertificateRecord]:
        for document in list(self._documents.values()):
            yield CertificateRecord.from_document(json.loads(document))


class LocalDirStore:
    """Files under a directory: temp file, then a hard link to the final name.

    `os.link` fails if the name exists, so the final file appears complete or not at all and is
    never replaced. `durable=True` also fsyncs the file and the directory (power-loss safety).
    """

    def __init__(self, root: Path, durable: bool = False) -> None:
        Path(root).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._directory = Path(root) / OBJECT_PREFIX
        self._directory.mkdir(exist_ok=True, mode=0o700)
        self._durable = durable

    def _path(self, fqdn: str) -> Path:
        _check_fqdn_is_safe(fqdn)
        return self._directory / f"{fqdn}.json"

    def put_certificate(self, record: CertificateRecord) -> None:
        path = self._path(record.fqdn)
        data = json.dumps(record.to_document()).encode()
        try:
            descriptor, temp_name = tempfile.mkstemp(dir=self._directory, prefix=_TEMP_PREFIX)
        except OSError as err:
            raise StorageError(f"could not write certificate {record.fqdn}: {err}") from err
        try:
            with os.fdopen(descriptor, "wb") as temp_file:  # mkstemp creates it mode 0600
                temp_file.write(data)
                if self._durable:
                    temp_file.flush()
                    os.fsync(temp_file.fileno())
            os.link(temp_name, path)
        except FileExistsError as err:
            raise AlreadyExists(f"certificate {record.fqdn} already exists") from err
        except OSError as err:
            raise StorageError(f"could not write certificate {record.fqdn}: {err}") from err
        finally:
            os.unlink(temp_name)
        if self._durable:
            self._sync_directory()

    def _sync_directory(self) -> None:
        directory = os.open(self._directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        try:
            data = self._path(fqdn).read_bytes()
        except FileNotFoundError as err:
            raise NotFound(f"certificate {fqdn} not found") from err
        except OSError as err:
            raise StorageError(f"could not read certificate {fqdn}: {err}") from err
        return CertificateRecord.from_document(json.loads(data))

    def exists(self, fqdn: str) -> bool:
        return self._path(fqdn).exists()

    def iter_certificates(self) -> Iterator[CertificateRecord]:
        for entry in os.scandir(self._directory):
            if entry.name.endswith(".json") and not entry.name.startswith(_TEMP_PREFIX):
                yield self.get_certificate(entry.name[: -len(".json")])


class S3Store:
    """One S3 object per certificate, created with `IfNoneMatch="*"` so it is never replaced."""

    def __init__(self, client: Any, bucket: str, kms_key_id: str | None = None) -> None:
        self._client = client
        self._bucket = bucket
        self._encryption = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        )

    def put_certificate(self, record: CertificateRecord) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=object_key(record.fqdn),
                Body=json.dumps(record.to_document()).encode(),
                ContentType="application/json",
                IfNoneMatch="*",
                **self._encryption,
            )
        except ClientError as err:
            if aws_error_code(err) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise AlreadyExists(f"certificate {record.fqdn} already exists") from err
            raise StorageError(f"could not write certificate {record.fqdn}: {err}") from err

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        from botocore.exceptions import ClientError

        _check_fqdn_is_safe(fqdn)
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=object_key(fqdn))
        except ClientError as err:
            if aws_error_code(err) in ("NoSuchKey", "404"):
                raise NotFound(f"certificate {fqdn} not found") from err
            raise StorageError(f"could not read certificate {fqdn}: {err}") from err
        return CertificateRecord.from_document(json.loads(response["Body"].read()))

    def exists(self, fqdn: str) -> bool:
        """Listing, not HeadObject: a HEAD on a missing bucket is a bare 404, like a missing key."""
        from botocore.exceptions import ClientError

        _check_fqdn_is_safe(fqdn)
        key = object_key(fqdn)
        try:
            response = self._client.list_objects_v2(Bucket=self._bucket, Prefix=key, MaxKeys=1)
        except ClientError as err:
            raise StorageError(f"could not look up certificate {fqdn}: {err}") from err
        return any(entry["Key"] == key for entry in response.get("Contents", []))

    def iter_certificates(self) -> Iterator[CertificateRecord]:
        from botocore.exceptions import ClientError

        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self._bucket, Prefix=OBJECT_PREFIX):
                for entry in page.get("Contents", []):
                    key = entry["Key"]
                    if key.endswith(".json"):
                        yield self.get_certificate(key[len(OBJECT_PREFIX) : -len(".json")])
        except ClientError as err:
            raise StorageError(f"could not list the certificates: {err}") from err

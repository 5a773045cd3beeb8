"""CertificateStore port and its adapters.

Documents are JSON objects under keys that S3 and the local directory share:
`certificates/<fqdn>.json` for a certificate's first generation, `certificates/<fqdn>/<N>.json`
(N zero-padded to six digits, so that keys sort by generation) for the renewal that made
generation N, and `revocations/<issuer>/<fqdn>.json` for the revocation of a certificate (or
`<fqdn>@<serial>.json` for one superseded generation of it). Every document is written once: a
second write of the same key raises AlreadyExists and leaves the first untouched, so a renewal and
a revocation are new documents, never edits, and of two renewals of the same generation only one
is stored. The current generation is the highest one stored.
The domain methods live in `DocumentStore`; each adapter supplies four byte-level primitives.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chalicelib.aws import aws_error_code, aws_errors
from chalicelib.errors import AlreadyExists, NotFound, StorageError
from chalicelib.model import CertificateRecord, RevocationRecord

OBJECT_PREFIX = "certificates/"
REVOCATION_PREFIX = "revocations/"
TEMP_PREFIX = ".tmp-"
WRITERS = 16  # concurrent S3 writes of one bulk
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
_ANONYMOUS_TEMP_FLAGS = getattr(os, "O_TMPFILE", 0) and os.O_TMPFILE | os.O_WRONLY | _CLOEXEC
"""O_TMPFILE (Linux): a file with no name until it is linked; 0 where the system has none."""


def _check_name_is_safe(name: str) -> None:
    """Stores take validated FQDNs; refuse anything that could step out of the folder anyway."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise NotFound(f"certificate {name!r} not found")


def object_key(fqdn: str, generation: int = 1) -> str:
    _check_name_is_safe(fqdn)
    if generation == 1:
        return f"{OBJECT_PREFIX}{fqdn}.json"
    return f"{generations_prefix(fqdn)}{generation:06d}.json"


def generations_prefix(fqdn: str) -> str:
    """Where the renewals of `fqdn` are stored (generations 2 and up)."""
    _check_name_is_safe(fqdn)
    return f"{OBJECT_PREFIX}{fqdn}/"


def _generation_of_key(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    stem = name.removesuffix(".json")
    return int(stem) if stem != name and stem.isdigit() else None


def revocation_key(issuer_fqdn: str, fqdn: str, serial: str | None = None) -> str:
    """The revocation of `fqdn`, or (with `serial`) of that one superseded generation of it."""
    _check_name_is_safe(issuer_fqdn)
    _check_name_is_safe(fqdn)
    name = fqdn if serial is None else f"{fqdn}@{serial}"
    return f"{REVOCATION_PREFIX}{issuer_fqdn}/{name}.json"


OnStored = Callable[[CertificateRecord], object]


def _nothing(record: CertificateRecord) -> None:
    """The default `on_stored`."""


class CertificateStore(Protocol):
    def put_certificate(self, record: CertificateRecord) -> None:
        """Write a new certificate, or a new generation of one (`record.generation`);
        AlreadyExists if the FQDN (the generation) is taken: nothing is overwritten."""

    def put_certificates(
        self, records: Iterable[CertificateRecord], on_stored: OnStored = _nothing
    ) -> BulkWrite:
        """Write several new certificates (a bulk), taking each record as `records` yields it
        (a bulk is stored while it is signed); once a write has failed, or `records` has raised
        (its exception is then the failure reported), no further record is taken and no further
        write starts.

        `on_stored(record)` runs as each write succeeds (an adapter may write concurrently,
        then it runs on a worker thread). Returns every record stored, in the given order (not
        necessarily a prefix when writes ran concurrently), and the first failure if any.
        """

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        """The current (highest) generation of the certificate; NotFound if there is none."""

    def get_generation(self, fqdn: str, generation: int) -> CertificateRecord:
        """One generation of the certificate; NotFound if there is no such generation."""

    def current_generation(self, fqdn: str) -> int:
        """The highest stored generation (1 when never renewed, or not stored at all)."""

    def list_generations(self, fqdn: str) -> list[CertificateRecord]:
        """Every generation, oldest first; NotFound if the certificate is not stored."""

    def exists(self, fqdn: str) -> bool: ...

    def iter_certificates(self) -> Iterator[CertificateRecord]:
        """The current generation of every stored certificate, in no particular order."""

    def put_revocation(self, revocation: RevocationRecord) -> None:
        """Record a revocation; AlreadyExists if the certificate (for a `generation_only` one:
        that generation) was revoked before."""

    def get_revocation(self, issuer_fqdn: str, fqdn: str) -> RevocationRecord | None:
        """The revocation of the certificate itself (not of one superseded generation)."""

    def get_generation_revocation(
        self, issuer_fqdn: str, fqdn: str, serial: str
    ) -> RevocationRecord | None:
        """The revocation of the generation with `serial` alone (a renewal's revoke_previous)."""

    def is_revoked(self, issuer_fqdn: str, fqdn: str) -> bool:
        """Whether the certificate is revoked (cheaper than reading it: a stat locally)."""

    def list_revocations(self, issuer_fqdn: str) -> list[RevocationRecord]:
        """The revocations of the certificates `issuer_fqdn` issued and of single generations
        of them (for its CRL)."""


@dataclass(frozen=True)
class BulkWrite:
    stored: list[CertificateRecord]
    failure: Exception | None = None


def _until_failed(
    records: Iterable[CertificateRecord], failures: list[Exception]
) -> Iterator[CertificateRecord]:
    """`records` until `failures` holds one (none is asked for after it: each may cost a
    signature); an exception of `records` itself joins them."""
    remaining = iter(records)
    while not failures:
        try:
            record = next(remaining)
        except StopIteration:
            return
        except Exception as err:  # the source of the records (the signing behind it) failed
            failures.append(err)
            return
        yield record


class DocumentStore:
    """The CertificateStore methods, over the byte-level primitives of an adapter."""

    def _create(self, key: str, data: bytes) -> None:
        """Write `data` under a new key; FileExistsError if the key exists."""
        raise NotImplementedError

    def _read(self, key: str) -> bytes | None:
        raise NotImplementedError

    def _exists(self, key: str) -> bool:
        raise NotImplementedError

    def _keys(self, prefix: str) -> Iterator[str]:
        raise NotImplementedError

    def _create_document(self, key: str, document: dict[str, Any], what: str) -> None:
        try:
            self._create(key, json.dumps(document).encode())
        except FileExistsError as err:
            raise AlreadyExists(what) from err

    def put_certificate(self, record: CertificateRecord) -> None:
        key = object_key(record.fqdn, record.generation)
        what = f"certificate {record.fqdn} already exists"
        if record.generation != 1:
            what = f"generation {record.generation} of {record.fqdn} already exists"
        self._create_document(key, record.to_document(), what)

    writers = 1
    """Writes of one bulk in flight at once: one after the other where writes are bound by the
    CPU (local files); more where each waits on the network (S3)."""

    def put_certificates(
        self, records: Iterable[CertificateRecord], on_stored: OnStored = _nothing
    ) -> BulkWrite:
        """Up to `writers` writes at once, each started as its record arrives (threads only
        from a second record on: a single issuance is written on the calling thread). Once a
        write fails, or `records` itself does (the signing behind it), no further record is
        taken; writes already in flight finish and are reported with what was stored."""
        failures: list[Exception] = []  # in the order they happened

        def write(record: CertificateRecord) -> bool:
            if failures:
                return False
            try:
                self.put_certificate(record)
            except Exception as err:  # reported to the caller; later writes are not started
                failures.append(err)
                return False
            on_stored(record)
            return True

        taken = _until_failed(records, failures)
        started = list(itertools.islice(taken, 2 if self.writers >= 2 else 1))
        if len(started) < 2:  # one writer, or one record (a single issuance): no threads
            written = [(record, write(record)) for record in itertools.chain(started, taken)]
        else:
            from concurrent.futures import ThreadPoolExecutor  # off the import path: S3 only

            with ThreadPoolExecutor(self.writers, "store-put") as pool:
                futures = [(record, pool.submit(write, record))
                           for record in itertools.chain(started, taken)]  # fmt: skip
            written = [(record, future.result()) for record, future in futures]
        stored = [record for record, done in written if done]
        return BulkWrite(stored, failures[0] if failures else None)

    def get_certificate(self, fqdn: str) -> CertificateRecord:
        return self.get_generation(fqdn, self.current_generation(fqdn))

    def get_generation(self, fqdn: str, generation: int) -> CertificateRecord:
        data = self._read(object_key(fqdn, generation))
        if data is None:
            if generation == 1:
                raise NotFound(f"certificate {fqdn} not found")
            raise NotFound(f"certificate {fqdn} has no generation {generation}")
        return CertificateRecord.from_document(json.loads(data))

    def _renewals(self, fqdn: str) -> list[int]:
        """The generations above the first, ascending."""
        numbers = (_generation_of_key(key) for key in self._keys(generations_prefix(fqdn)))
        return sorted(number for number in numbers if number is not None and number > 1)

    def current_generation(self, fqdn: str) -> int:
        renewals = self._renewals(fqdn)
        return renewals[-1] if renewals else 1

    def list_generations(self, fqdn: str) -> list[CertificateRecord]:
        return [self.get_generation(fqdn, number) for number in [1, *self._renewals(fqdn)]]

    def exists(self, fqdn: str) -> bool:
        return self._exists(object_key(fqdn))

    def iter_certificates(self) -> Iterator[CertificateRecord]:
        for key in self._keys(OBJECT_PREFIX):
            if key.endswith(".json") and "/" not in key[len(OBJECT_PREFIX) :]:
                yield self.get_certificate(key[len(OBJECT_PREFIX) : -len(".json")])

    def put_revocation(self, revocation: RevocationRecord) -> None:
        if revocation.generation_only:
            key = revocation_key(revocation.issuer_fqdn, revocation.fqdn, revocation.serial)
            what = f"generation {revocation.serial} of {revocation.fqdn} is already revoked"
        else:
            key = revocation_key(revocation.issuer_fqdn, revocation.fqdn)
            what = f"{revocation.fqdn} is already revoked"
        self._create_document(key, revocation.to_document(), what)

    def get_revocation(self, issuer_fqdn: str, fqdn: str) -> RevocationRecord | None:
        return self._read_revocation(revocation_key(issuer_fqdn, fqdn))

    def get_generation_revocation(
        self, issuer_fqdn: str, fqdn: str, serial: str
    ) -> RevocationRecord | None:
        return self._read_revocation(revocation_key(issuer_fqdn, fqdn, serial))

    def _read_revocation(self, key: str) -> RevocationRecord | None:
        data = self._read(key)
        return None if data is None else RevocationRecord.from_document(json.loads(data))

    def is_revoked(self, issuer_fqdn: str, fqdn: str) -> bool:
        return self._exists(revocation_key(issuer_fqdn, fqdn))

    def list_revocations(self, issuer_fqdn: str) -> list[RevocationRecord]:
        prefix = revocation_key(issuer_fqdn, "x").removesuffix("x.json")
        revocations = []
        for key in self._keys(prefix):
            data = self._read(key)
            if data is not None:
                revocations.append(RevocationRecord.from_document(json.loads(data)))
        return revocations


class InMemoryStore(DocumentStore):
    """For unit tests: same contract, kept in a dict."""

    def __init__(self) -> None:
        self._documents: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _create(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._documents:
                raise FileExistsError(key)
            self._documents[key] = data

    def _read(self, key: str) -> bytes | None:
        return self._documents.get(key)

    def _exists(self, key: str) -> bool:
        return key in self._documents

    def _keys(self, prefix: str) -> Iterator[str]:
        return iter([key for key in list(self._documents) if key.startswith(prefix)])


def _supports_anonymous_temp(directory: str) -> bool:
    """O_TMPFILE works in `directory` and /proc can give such a file its name (`os.link`
    through /proc/self/fd, as open(2) describes): tried once, with a probe file."""
    if not _ANONYMOUS_TEMP_FLAGS or not os.path.isdir("/proc/self/fd"):
        return False
    probe = os.path.join(directory, f"{TEMP_PREFIX}probe-{secrets.token_hex(6)}")
    try:
        descriptor = os.open(directory, _ANONYMOUS_TEMP_FLAGS, 0o600)
        try:
            _link_anonymous(descriptor, probe)
        finally:
            os.close(descriptor)
        os.unlink(probe)
    except OSError:  # EOPNOTSUPP, EISDIR (older kernels), no /proc access: named temp files
        return False
    return True


def _link_anonymous(descriptor: int, path: str) -> None:
    """Name an O_TMPFILE file: linkat(AT_SYMLINK_FOLLOW) on its /proc/self/fd entry.

    Python calls linkat (not link, which would link the /proc symlink itself) only when given a
    directory descriptor; the kernel ignores it, as the source path is absolute.
    """
    os.link(f"/proc/self/fd/{descriptor}", path, src_dir_fd=descriptor, follow_symlinks=True)


def _is_absent(error: OSError) -> bool:
    """No such file; a name too long for the file system cannot have been stored either."""
    return error.errno in (errno.ENOENT, errno.ENAMETOOLONG)


def _make_directory(directory: str) -> None:
    """`directory` and the missing levels above it, each created 0700 (`os.makedirs` gives the
    levels above the last the default mode, 0777 less the umask)."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        return
    except FileNotFoundError:
        parent = os.path.dirname(directory)
        if not parent or parent == directory:
            raise
        _make_directory(parent)
        with contextlib.suppress(FileExistsError):  # another process may have made it meanwhile
            os.mkdir(directory, 0o700)


class LocalDirStore(DocumentStore):
    """Files under a directory: temp file, then a hard link to the final name.

    `os.link` fails if the name exists, so the final file appears complete or not at all and is
    never replaced. `durable=True` also fsyncs the file and the directory (power-loss safety).
    Where the file system offers it (Linux), the temp file is anonymous (O_TMPFILE): one
    directory entry per write instead of three, and a crash leaves nothing behind.
    """

    def __init__(self, root: Path, durable: bool = False) -> None:
        Path(root).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._root = os.fspath(root)  # joined with keys on every call: a str, not a Path
        self._durable = durable
        if durable:  # the root's own entry, in case this created it
            self._sync_directory(os.path.dirname(os.path.abspath(self._root)))
        self._directories: set[str] = set()  # known to exist (and, when durable, to be on disk)
        self._ensure_directory(os.path.join(self._root, OBJECT_PREFIX.rstrip("/")))
        self._anonymous_temp = _supports_anonymous_temp(self._root)
        # Named temp files: unique per process (random) and per write (counter), no name search.
        self._temp_stem = f"{TEMP_PREFIX}{secrets.token_hex(6)}-"
        self._temp_numbers = itertools.count()

    def _create(self, key: str, data: bytes) -> None:
        path = os.path.join(self._root, key)
        directory = os.path.dirname(path)
        try:
            self._ensure_directory(directory)
            try:
                temp_path, descriptor = self._open_temp(directory)
            except FileNotFoundError:  # the directory was removed behind this store's back
                self._directories.discard(directory)
                self._ensure_directory(directory)
                temp_path, descriptor = self._open_temp(directory)
        except OSError as err:
            raise StorageError(f"could not write {key}: {err}") from err
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                if self._durable:
                    os.fsync(descriptor)
                if temp_path is None:
                    _link_anonymous(descriptor, path)
                else:
                    os.link(temp_path, path)
            finally:
                os.close(descriptor)
            if self._durable:
                self._sync_directory(directory)
        except FileExistsError:
            raise
        except OSError as err:
            raise StorageError(f"could not write {key}: {err}") from err
        finally:
            if temp_path is not None:
                os.unlink(temp_path)

    def _ensure_directory(self, directory: str) -> None:
        """Create `directory` (and its parents) unless this store has seen it.

        When durable, the first sight of a directory also fsyncs each level's parent up to the
        store's root, whoever created it: no file in it is acknowledged before its entry is on
        disk.
        """
        if directory in self._directories:
            return
        _make_directory(directory)
        if self._durable:
            root, level = os.path.normpath(self._root), os.path.normpath(directory)
            while level != root and os.path.dirname(level) != level:
                self._sync_directory(os.path.dirname(level))
                level = os.path.dirname(level)
        self._directories.add(directory)

    def _open_temp(self, directory: str) -> tuple[str | None, int]:
        """A new temp file (mode 0600) next to the final name, and its name (None: anonymous).

        A leftover named temp file is skipped, never reused.
        """
        if self._anonymous_temp:
            return None, os.open(directory, _ANONYMOUS_TEMP_FLAGS, 0o600)
        for _ in range(100):
            temp_path = os.path.join(directory, f"{self._temp_stem}{next(self._temp_numbers)}")
            try:
                return temp_path, os.open(temp_path, _TEMP_FLAGS, 0o600)
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, "no free temp file name", directory)

    @staticmethod
    def _sync_directory(directory: str) -> None:
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _read(self, key: str) -> bytes | None:
        try:
            with open(os.path.join(self._root, key), "rb") as file:
                return file.read()
        except OSError as err:
            if _is_absent(err):
                return None
            raise StorageError(f"could not read {key}: {err}") from err

    def _exists(self, key: str) -> bool:
        try:
            os.stat(os.path.join(self._root, key))
        except OSError as err:
            if _is_absent(err):
                return False
            raise StorageError(f"could not look up {key}: {err}") from err
        return True

    def _keys(self, prefix: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(os.path.join(self._root, prefix)))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.is_file() and not entry.name.startswith(TEMP_PREFIX):
                yield prefix + entry.name


class S3Store(DocumentStore):
    """One S3 object per document, created with `IfNoneMatch="*"` so it is never replaced."""

    writers = WRITERS  # 1000 PutObject calls one after the other would outlast API Gateway's 29 s

    def __init__(self, client: Any, bucket: str, kms_key_id: str | None = None) -> None:
        self._client = client
        self._bucket = bucket
        self._encryption = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
        )

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

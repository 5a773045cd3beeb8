"""The document layout both certificate stores share, and their domain methods.

Documents are JSON objects under keys that S3 and the local directory share:
`certificates/<fqdn>.json` for a certificate's first generation, `certificates/<fqdn>/<N>.json`
(N zero-padded to six digits, so that keys sort by generation) for the renewal that made
generation N, and `revocations/<issuer>/<fqdn>.json` for the revocation of a certificate (or
`<fqdn>@<serial>.json` for one generation of it). The domain methods live in `DocumentStore`;
each adapter supplies four byte-level primitives.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from chalicelib.errors import AlreadyExists, CorruptDocument, NotFound
from chalicelib.model import CertificateRecord, RevocationRecord
from chalicelib.ports.store import BulkWrite, CertificateState, OnCorrupt, OnStored, nothing

OBJECT_PREFIX = "certificates/"
REVOCATION_PREFIX = "revocations/"


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

    def _delete(self, key: str) -> None:
        """Remove the key; nothing happens when it is not there."""
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
        self, records: Iterable[CertificateRecord], on_stored: OnStored = nothing
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
        key = object_key(fqdn, generation)
        data = self._read(key)
        if data is None:
            if generation == 1:
                raise NotFound(f"certificate {fqdn} not found")
            raise NotFound(f"certificate {fqdn} has no generation {generation}")
        return _parse(key, data, CertificateRecord.from_document)

    def _renewals(self, fqdn: str) -> list[int]:
        """The generations above the first, ascending."""
        numbers = (_generation_of_key(key) for key in self._keys(generations_prefix(fqdn)))
        return sorted(number for number in numbers if number is not None and number > 1)

    def current_generation(self, fqdn: str) -> int:
        renewals = self._renewals(fqdn)
        return renewals[-1] if renewals else 1

    def generation_numbers(self, fqdn: str) -> list[int]:
        if not self.exists(fqdn):
            raise NotFound(f"certificate {fqdn} not found")
        return [1, *self._renewals(fqdn)]

    def list_generations(self, fqdn: str) -> list[CertificateRecord]:
        return [self.get_generation(fqdn, number) for number in self.generation_numbers(fqdn)]

    def certificate_states(self, names: Sequence[tuple[str, str]]) -> list[CertificateState]:
        return [self._state(issuer, fqdn) for issuer, fqdn in names]

    def _state(self, issuer_fqdn: str, fqdn: str) -> CertificateState:
        return CertificateState(self.current_generation(fqdn), self.is_revoked(issuer_fqdn, fqdn))

    def exists(self, fqdn: str) -> bool:
        return self._exists(object_key(fqdn))

    def iter_certificates(
        self, on_corrupt: OnCorrupt | None = None, every_generation: bool = False
    ) -> Iterator[CertificateRecord]:
        for key in self._keys(OBJECT_PREFIX):
            if key.endswith(".json") and "/" not in key[len(OBJECT_PREFIX) :]:
                fqdn = key[len(OBJECT_PREFIX) : -len(".json")]
                numbers = self.generation_numbers(fqdn) if every_generation else None
                for number in numbers or [self.current_generation(fqdn)]:
                    try:
                        yield self.get_generation(fqdn, number)
                    except CorruptDocument as corrupt:
                        if on_corrupt is None:
                            raise
                        on_corrupt(corrupt)

    def delete_certificate(self, fqdn: str) -> int:
        renewals = self._renewals(fqdn)
        first = self._exists(object_key(fqdn))
        for number in reversed(renewals):
            self._delete(object_key(fqdn, number))
        self._delete(object_key(fqdn))
        self._deleted_generations(fqdn)
        return len(renewals) + first

    def _deleted_generations(self, fqdn: str) -> None:
        """After a deletion: what an adapter tidies (the local store's empty folder)."""

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
        return None if data is None else _parse(key, data, RevocationRecord.from_document)

    def is_revoked(self, issuer_fqdn: str, fqdn: str) -> bool:
        return self._exists(revocation_key(issuer_fqdn, fqdn))

    def list_revocations(self, issuer_fqdn: str) -> list[RevocationRecord]:
        prefix = revocation_key(issuer_fqdn, "x").removesuffix("x.json")
        return list(self._revocations_under(prefix, None))

    def iter_revocations(self, on_corrupt: OnCorrupt | None = None) -> Iterator[RevocationRecord]:
        return self._revocations_under(REVOCATION_PREFIX, on_corrupt)

    def _revocations_under(
        self, prefix: str, on_corrupt: OnCorrupt | None
    ) -> Iterator[RevocationRecord]:
        for key in self._keys(prefix):
            if not key.endswith(".json"):
                continue
            data = self._read(key)
            if data is None:
                continue
            try:
                yield _parse(key, data, RevocationRecord.from_document)
            except CorruptDocument as corrupt:
                if on_corrupt is None:
                    raise
                on_corrupt(corrupt)


Parsed = TypeVar("Parsed")


def _parse(key: str, data: bytes, from_document: Callable[[dict[str, Any]], Parsed]) -> Parsed:
    """A stored document as a record, or CorruptDocument naming its key and what is wrong."""
    if not data.strip():
        raise CorruptDocument(key, "it is empty")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise CorruptDocument(key, f"it is not whole JSON ({err})") from err
    if not isinstance(document, dict):
        raise CorruptDocument(key, "it is not a JSON object")
    try:
        return from_document(document)
    except (KeyError, TypeError, ValueError) as err:
        raise CorruptDocument(key, f"{type(err).__name__}: {err}") from err

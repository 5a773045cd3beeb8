"""One contract for the CertificateStore port, run against every adapter.

Add an adapter by appending a factory to STORE_FACTORIES; every test in TestCertificateStoreContract
then runs against it too. Adapter-specific behaviour (file layout, modes) lives in its own class.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.adapters.aws.store import WRITERS, S3Store
from chalicelib.adapters.documents import object_key
from chalicelib.adapters.local.store import LocalDirStore
from chalicelib.errors import AlreadyExists, NotFound, StorageError
from chalicelib.model import CertificateRecord, RevocationRecord
from chalicelib.ports.store import CertificateStore
from tests.backends import AwsResources, adapter_params
from tests.fakes import InMemoryStore
from tests.records import (
    CELL,
    DEVICE_ID,
    ISSUED_AT,
    PRIVATE_KEY_PEM,
    ROOT_PEM,
    make_record,
    make_root_record,
)

StoreFactory = Callable[[pytest.FixtureRequest], CertificateStore]


def _in_memory_store(request: pytest.FixtureRequest) -> CertificateStore:
    return InMemoryStore()


def _local_dir_store(request: pytest.FixtureRequest) -> CertificateStore:
    return LocalDirStore(request.getfixturevalue("tmp_path") / "certstore")


def _durable_local_dir_store(request: pytest.FixtureRequest) -> CertificateStore:
    return LocalDirStore(request.getfixturevalue("tmp_path") / "certstore", durable=True)


def _s3_store(request: pytest.FixtureRequest) -> CertificateStore:
    aws: AwsResources = request.getfixturevalue("aws_resources")
    return S3Store(aws.session.client("s3"), aws.bucket, aws.kms_key_id)


STORE_FACTORIES: list[tuple[str, StoreFactory]] = [
    ("in-memory", _in_memory_store),
    ("local-dir", _local_dir_store),
    ("local-dir-durable", _durable_local_dir_store),
    ("s3", _s3_store),
]
"""Factories take the pytest request so an adapter can pull in what it needs (tmp_path, moto)."""

THREAD_SAFE_BACKENDS = ("in-memory", "local-dir", "local-dir-durable")
"""Adapters whose backend makes a conditional create atomic across threads in this process.

S3 makes `IfNoneMatch="*"` atomic, but moto checks and then writes without a lock: under 8 threads
two puts can both pass the check (and moto's key buffers then fail with ValueError in a thread).
Run there, the concurrent test below would be flaky for moto's sake, so S3 gets the same promise
with sequential puts in TestS3Store instead.
"""


@pytest.fixture(params=adapter_params(STORE_FACTORIES))
def store(request: pytest.FixtureRequest) -> CertificateStore:
    return request.param(request)


@pytest.fixture(
    params=[factory for name, factory in STORE_FACTORIES if name in THREAD_SAFE_BACKENDS],
    ids=[name for name, _ in STORE_FACTORIES if name in THREAD_SAFE_BACKENDS],
)
def thread_safe_store(request: pytest.FixtureRequest) -> CertificateStore:
    return request.param(request)


def assert_same_record(actual: CertificateRecord, expected: CertificateRecord) -> None:
    """Field by field, so a failure names the field that did not survive the round trip."""
    for field in dataclasses.fields(CertificateRecord):
        assert getattr(actual, field.name) == getattr(expected, field.name), field.name
    assert actual.not_after.utcoffset() == timedelta(0)
    assert actual.created_at.utcoffset() == timedelta(0)


class TestCertificateStoreContract:
    @pytest.mark.parametrize(
        "record", [make_record(), make_root_record()], ids=["device-all-fields", "root-defaults"]
    )
    def test_put_then_get_round_trips_every_field(
        self, store: CertificateStore, record: CertificateRecord
    ) -> None:
        store.put_certificate(record)

        assert_same_record(store.get_certificate(record.fqdn), record)

    def test_get_of_a_missing_fqdn_raises_not_found(self, store: CertificateStore) -> None:
        store.put_certificate(make_root_record("example.com"))

        with pytest.raises(NotFound):
            store.get_certificate("missing.example.com")

    def test_second_put_of_the_same_fqdn_raises_and_keeps_the_first(
        self, store: CertificateStore
    ) -> None:
        first = make_record()
        second = make_record(
            serial="0123456789abcdef",
            certificate_pem=ROOT_PEM,
            private_key_pem=PRIVATE_KEY_PEM.replace("U3RvcmVUZXN0S2V5", "T3RoZXJLZXlPdGhl"),
        )
        store.put_certificate(first)

        with pytest.raises(AlreadyExists):
            store.put_certificate(second)

        assert_same_record(store.get_certificate(first.fqdn), first)

    def test_exists_is_true_only_for_stored_fqdns(self, store: CertificateStore) -> None:
        store.put_certificate(make_root_record("example.com"))

        assert store.exists("example.com") is True
        assert store.exists("other.example.com") is False
        assert store.exists("example.org") is False

    def test_iter_certificates_yields_every_record_exactly_once(
        self, store: CertificateStore
    ) -> None:
        records = [make_root_record("example.com")] + [
            make_record(f"device-{index:02d}.{CELL}", serial=f"{index:040x}") for index in range(12)
        ]
        for record in records:
            store.put_certificate(record)

        listed = list(store.iter_certificates())

        assert sorted(record.fqdn for record in listed) == sorted(r.fqdn for r in records)
        by_fqdn = {record.fqdn: record for record in listed}
        for record in records:
            assert_same_record(by_fqdn[record.fqdn], record)

    def test_iter_certificates_of_an_empty_store_yields_nothing(
        self, store: CertificateStore
    ) -> None:
        assert list(store.iter_certificates()) == []

    def test_put_certificates_stores_a_bulk_and_reports_it_in_order(
        self, store: CertificateStore
    ) -> None:
        records = [make_record(f"bulk-{n:02d}.{CELL}", serial=f"{n:040x}") for n in range(20)]

        written = store.put_certificates(records)

        assert written.failure is None
        assert [record.fqdn for record in written.stored] == [record.fqdn for record in records]
        for record in records:
            assert_same_record(store.get_certificate(record.fqdn), record)

    def test_put_certificates_stops_at_a_taken_fqdn_and_reports_what_it_stored(
        self, store: CertificateStore
    ) -> None:
        records = [make_record(f"bulk-{n:02d}.{CELL}", serial=f"{n:040x}") for n in range(20)]
        taken = records[10]
        first_owner = dataclasses.replace(taken, serial="ab" * 20)
        store.put_certificate(first_owner)

        written = store.put_certificates(records)

        assert isinstance(written.failure, AlreadyExists)
        assert_same_record(store.get_certificate(taken.fqdn), first_owner)
        stored = {record.fqdn for record in written.stored}
        assert taken.fqdn not in stored
        assert [r.fqdn for r in written.stored] == [r.fqdn for r in records if r.fqdn in stored]
        for record in records:
            if record.fqdn in stored:  # everything reported as stored is there...
                assert_same_record(store.get_certificate(record.fqdn), record)
            elif record is not taken:  # ...and nothing else was written
                assert not store.exists(record.fqdn)

    def test_put_certificates_takes_records_as_they_come_and_stops_when_their_source_fails(
        self, store: CertificateStore
    ) -> None:
        records = [make_record(f"bulk-{n:02d}.{CELL}", serial=f"{n:040x}") for n in range(5)]
        taken: list[str] = []

        def signed_records() -> Iterator[CertificateRecord]:
            for record in records[:3]:
                taken.append(record.fqdn)
                yield record
            raise MemoryError("signing failed part-way")

        written = store.put_certificates(signed_records())

        assert isinstance(written.failure, MemoryError)
        assert taken == [record.fqdn for record in records[:3]]  # nothing asked after the failure
        stored = [record.fqdn for record in written.stored]
        assert stored == [fqdn for fqdn in taken if fqdn in stored]
        for record in records:  # what is reported as stored is there, and nothing else
            if record.fqdn in stored:
                assert_same_record(store.get_certificate(record.fqdn), record)
            else:
                assert not store.exists(record.fqdn)


def renewal_of(record: CertificateRecord, generation: int, serial: str) -> CertificateRecord:
    return dataclasses.replace(
        record, generation=generation, serial=serial, previous_serial=record.serial
    )


class TestGenerations:
    """Renewals: generation N + 1 beside N, each document written once."""

    def test_the_current_generation_is_the_highest_and_every_one_stays(
        self, store: CertificateStore
    ) -> None:
        first = make_record()
        store.put_certificate(first)
        assert store.current_generation(first.fqdn) == 1
        generations = [first]
        for number in range(2, 12):  # past 9: generations compare as numbers, not as text
            generations.append(renewal_of(generations[-1], number, f"{number:040x}"))
            store.put_certificate(generations[-1])

        assert store.current_generation(first.fqdn) == 11
        assert_same_record(store.get_certificate(first.fqdn), generations[-1])
        listed = store.list_generations(first.fqdn)
        assert [record.generation for record in listed] == list(range(1, 12))
        for stored, expected in zip(listed, generations, strict=True):
            assert_same_record(stored, expected)
        assert_same_record(store.get_generation(first.fqdn, 4), generations[3])
        assert [record.serial for record in store.iter_certificates()] == [generations[-1].serial]
        assert store.exists(first.fqdn)

    def test_a_generation_is_written_once(self, store: CertificateStore) -> None:
        first = make_record()
        store.put_certificate(first)
        second = renewal_of(first, 2, "02" * 20)
        store.put_certificate(second)

        with pytest.raises(AlreadyExists, match="generation 2"):
            store.put_certificate(renewal_of(first, 2, "03" * 20))

        assert_same_record(store.get_certificate(first.fqdn), second)
        assert [r.serial for r in store.list_generations(first.fqdn)] == [first.serial, "02" * 20]

    def test_missing_generations_and_certificates_are_not_found(
        self, store: CertificateStore
    ) -> None:
        first = make_record()
        store.put_certificate(first)

        with pytest.raises(NotFound, match="no generation 2"):
            store.get_generation(first.fqdn, 2)
        with pytest.raises(NotFound):
            store.list_generations(f"other.{CELL}")
        assert store.current_generation(f"other.{CELL}") == 1

    def test_a_generation_revoked_alone_is_apart_from_the_certificate_revocation(
        self, store: CertificateStore
    ) -> None:
        first = make_record()
        store.put_certificate(first)
        store.put_certificate(renewal_of(first, 2, "02" * 20))
        now = first.created_at
        alone = RevocationRecord(
            first.fqdn, CELL, first.serial, "superseded", now, generation_only=True
        )
        store.put_revocation(alone)

        assert store.is_revoked(CELL, first.fqdn) is False
        assert store.get_revocation(CELL, first.fqdn) is None
        assert store.get_generation_revocation(CELL, first.fqdn, first.serial) == alone
        with pytest.raises(AlreadyExists):
            store.put_revocation(dataclasses.replace(alone, reason="keyCompromise"))
        whole = RevocationRecord(
            first.fqdn, CELL, "02" * 20, "keyCompromise", now, serials=("02" * 20,)
        )
        store.put_revocation(whole)

        assert store.is_revoked(CELL, first.fqdn) is True
        assert store.get_revocation(CELL, first.fqdn) == whole
        assert sorted(store.list_revocations(CELL), key=lambda r: r.reason) == [whole, alone]

    def test_deleting_removes_every_generation_and_keeps_the_revocations(
        self, store: CertificateStore
    ) -> None:
        first = make_record()
        other = make_record(f"other.{CELL}")
        for record in (first, other):
            store.put_certificate(record)
        generations = [first]
        for number in range(2, 4):
            generations.append(renewal_of(generations[-1], number, f"{number:040x}"))
            store.put_certificate(generations[-1])
        whole = RevocationRecord(
            first.fqdn, CELL, generations[-1].serial, "keyCompromise", first.created_at,
            serials=tuple(record.serial for record in generations),
        )  # fmt: skip
        store.put_revocation(whole)

        assert store.delete_certificate(first.fqdn) == 3
        assert not store.exists(first.fqdn)
        with pytest.raises(NotFound):
            store.list_generations(first.fqdn)
        assert store.current_generation(first.fqdn) == 1  # as for a name never stored
        assert [record.fqdn for record in store.iter_certificates()] == [other.fqdn]
        assert store.get_revocation(CELL, first.fqdn) == whole  # still on the CRL
        assert store.delete_certificate(first.fqdn) == 0  # again: nothing left
        assert_same_record(store.get_certificate(other.fqdn), other)


class TestConcurrentPuts:
    """The write-once promise under threads, on the adapters of THREAD_SAFE_BACKENDS."""

    @pytest.mark.parametrize("generation", [1, 2], ids=["issuance", "renewal"])
    def test_concurrent_puts_of_one_fqdn_let_exactly_one_win(
        self, thread_safe_store: CertificateStore, generation: int
    ) -> None:
        store = thread_safe_store
        contenders = [make_record(serial=f"{index:040x}") for index in range(8)]
        if generation == 2:
            first = make_record(serial="ff" * 20)
            store.put_certificate(first)
            contenders = [renewal_of(first, 2, record.serial) for record in contenders]
        start = threading.Barrier(len(contenders))
        outcomes: list[tuple[CertificateRecord, str]] = []
        outcomes_lock = threading.Lock()

        def contend(record: CertificateRecord) -> None:
            start.wait()
            try:
                store.put_certificate(record)
                outcome = "stored"
            except AlreadyExists:
                outcome = "already-exists"
            with outcomes_lock:
                outcomes.append((record, outcome))

        threads = [threading.Thread(target=contend, args=(record,)) for record in contenders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert sorted(outcome for _, outcome in outcomes) == ["already-exists"] * 7 + ["stored"]
        (winner,) = [record for record, outcome in outcomes if outcome == "stored"]
        assert_same_record(store.get_certificate(winner.fqdn), winner)
        assert [record.serial for record in store.iter_certificates()] == [winner.serial]
        assert len(store.list_generations(winner.fqdn)) == generation


def without_anonymous_temp_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on a system without O_TMPFILE: named temp files, linked then removed."""
    monkeypatch.setattr("chalicelib.adapters.local.store._ANONYMOUS_TEMP_FLAGS", 0)


@pytest.fixture(
    params=[(False, True), (True, True), (False, False), (True, False)],
    ids=["normal", "durable", "named-temp-files", "durable-named-temp-files"],
)
def local_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[LocalDirStore, Path]:
    durable, anonymous_temp = request.param
    if not anonymous_temp:
        without_anonymous_temp_files(monkeypatch)
    root = tmp_path / "certstore"
    return LocalDirStore(root, durable=durable), root


def temp_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob(".tmp-*"))


class TestLocalDirStore:
    """What only the file adapter promises: layout, modes, atomic write-once, safe names."""

    def test_one_file_per_certificate_with_private_modes(
        self, local_store: tuple[LocalDirStore, Path]
    ) -> None:
        store, root = local_store
        record = make_record()

        store.put_certificate(record)

        path = root / "certificates" / f"{record.fqdn}.json"
        assert json.loads(path.read_text())["fqdn"] == record.fqdn
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE((root / "certificates").stat().st_mode) == 0o700
        assert stat.S_IMODE(root.stat().st_mode) == 0o700
        assert sorted(p.name for p in (root / "certificates").iterdir()) == [path.name]

    def test_no_temp_file_remains_after_success_or_already_exists(
        self, local_store: tuple[LocalDirStore, Path]
    ) -> None:
        store, root = local_store
        directory = root / "certificates"
        store.put_certificate(make_record())
        assert temp_files(directory) == []

        with pytest.raises(AlreadyExists):
            store.put_certificate(make_record(serial="ff"))

        assert temp_files(directory) == []
        assert [p.name for p in directory.iterdir()] == [f"{make_record().fqdn}.json"]

    def test_leftover_temp_files_are_ignored_by_iter_certificates(
        self, local_store: tuple[LocalDirStore, Path]
    ) -> None:
        store, root = local_store
        directory = root / "certificates"
        store.put_certificate(make_root_record("example.com"))
        half_written = json.dumps(make_root_record("crashed.example.com").to_document())
        (directory / ".tmp-k3j9x2ab").write_text(half_written[:40])
        (directory / ".tmp-q8w7e6rt.json").write_text(half_written)

        assert [record.fqdn for record in store.iter_certificates()] == ["example.com"]

    @pytest.mark.parametrize("unsafe", ["../x", "a/b", "..", "", ".tmp-q8w7e6rt", "a\\b"])
    def test_unsafe_names_are_not_found_and_touch_nothing_outside(
        self, local_store: tuple[LocalDirStore, Path], unsafe: str
    ) -> None:
        store, root = local_store
        directory = root / "certificates"
        decoy = json.dumps(make_root_record("decoy.example.com").to_document())
        (root / "x.json").write_text(decoy)
        (directory / "a").mkdir()
        (directory / "a" / "b.json").write_text(decoy)
        (directory / ".tmp-q8w7e6rt.json").write_text(decoy)
        before = sorted(str(path) for path in root.parent.rglob("*"))

        with pytest.raises(NotFound):
            store.get_certificate(unsafe)
        with pytest.raises(NotFound):
            store.put_certificate(make_root_record(unsafe))

        assert sorted(str(path) for path in root.parent.rglob("*")) == before
        assert (root / "x.json").read_text() == decoy

    def test_a_second_instance_on_the_same_directory_reads_what_the_first_wrote(
        self, local_store: tuple[LocalDirStore, Path]
    ) -> None:
        store, root = local_store
        record = make_record()
        store.put_certificate(record)

        reopened = LocalDirStore(root)

        assert_same_record(reopened.get_certificate(record.fqdn), record)
        with pytest.raises(AlreadyExists):
            reopened.put_certificate(record)

    def test_leftover_temp_files_with_the_next_names_are_skipped_and_kept(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        without_anonymous_temp_files(monkeypatch)
        monkeypatch.setattr(
            "chalicelib.adapters.local.store.secrets.token_hex", lambda _: "5eed5eed5eed"
        )
        root = tmp_path / "certstore"
        store = LocalDirStore(root)
        directory = root / "certificates"
        leftovers = {f".tmp-5eed5eed5eed-{n}": f"left by a crashed writer {n}" for n in (0, 1)}
        for name, text in leftovers.items():
            (directory / name).write_text(text)
        record = make_record()

        store.put_certificate(record)

        assert_same_record(store.get_certificate(record.fqdn), record)
        assert temp_files(directory) == sorted(leftovers)
        for name, text in leftovers.items():
            assert (directory / name).read_text() == text

    def test_a_directory_removed_behind_the_store_is_created_again(
        self, local_store: tuple[LocalDirStore, Path]
    ) -> None:
        store, root = local_store
        store.put_certificate(make_root_record("example.com"))
        shutil.rmtree(root / "certificates")

        store.put_certificate(make_root_record("example.org"))

        assert [record.fqdn for record in store.iter_certificates()] == ["example.org"]
        assert stat.S_IMODE((root / "certificates").stat().st_mode) == 0o700

    def test_durable_writes_sync_every_new_directory_level_before_they_return(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        synced: list[str] = []
        monkeypatch.setattr(
            LocalDirStore, "_sync_directory", staticmethod(lambda d: synced.append(str(d)))
        )
        root = tmp_path / "certstore"
        store = LocalDirStore(root, durable=True)
        assert {str(tmp_path), str(root)} <= set(synced)  # the root's and certificates/' entries
        revocation = RevocationRecord(
            fqdn=f"{DEVICE_ID}.{CELL}", issuer_fqdn=CELL, serial="0a", reason="keyCompromise",
            revoked_at=ISSUED_AT,
        )  # fmt: skip
        synced.clear()

        store.put_revocation(revocation)

        parents = {str(root), str(root / "revocations")}  # the new directories' entries
        issuer_directory = str(root / "revocations" / CELL)  # the new file's entry, after it
        assert (set(synced[:-1]), synced[-1]) == (parents, issuer_directory)
        second = LocalDirStore(root, durable=True)  # another process: the directory exists
        synced.clear()

        second.put_revocation(dataclasses.replace(revocation, fqdn=f"other.{CELL}"))

        assert (set(synced[:-1]), synced[-1]) == (parents, issuer_directory)

    @pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
    def test_no_descriptor_is_left_open(self, local_store: tuple[LocalDirStore, Path]) -> None:
        store, _ = local_store
        before = len(os.listdir("/proc/self/fd"))

        store.put_certificate(make_record())
        with pytest.raises(AlreadyExists):
            store.put_certificate(make_record(serial="ff"))

        assert len(os.listdir("/proc/self/fd")) == before

    @pytest.mark.skipif(sys.platform != "linux", reason="O_TMPFILE is Linux only")
    def test_on_linux_a_write_creates_no_named_temp_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store = LocalDirStore(tmp_path / "certstore")
        if not store._anonymous_temp:
            pytest.skip(f"the file system of {tmp_path} has no O_TMPFILE")
        created: list[str] = []
        real_open = os.open

        def recording_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if flags & os.O_CREAT:  # a named file (O_TMPFILE opens carry no O_CREAT)
                created.append(str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr("chalicelib.adapters.local.store.os.open", recording_open)
        record = make_record()

        store.put_certificate(record)

        assert created == []  # the file was born anonymous and only ever got its final name
        assert_same_record(store.get_certificate(record.fqdn), record)

    @pytest.mark.skipif(not hasattr(os, "O_TMPFILE"), reason="O_TMPFILE is Linux only")
    @pytest.mark.parametrize("failing", ["open", "link"])
    def test_where_anonymous_temp_files_fail_named_ones_are_used(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
    ) -> None:
        """O_TMPFILE refused by the file system, or no /proc to name such a file through."""
        real_open, real_link = os.open, os.link

        def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            if failing == "open" and flags & os.O_TMPFILE == os.O_TMPFILE:
                raise OSError(errno.EOPNOTSUPP, "O_TMPFILE is not supported")
            return real_open(path, flags, *args, **kwargs)

        def refusing_link(source: Any, target: Any, **kwargs: Any) -> None:
            if failing == "link" and str(source).startswith("/proc/self/fd/"):
                raise PermissionError(errno.EACCES, "no access to /proc")
            real_link(source, target, **kwargs)

        monkeypatch.setattr("chalicelib.adapters.local.store.os.open", refusing_open)
        monkeypatch.setattr("chalicelib.adapters.local.store.os.link", refusing_link)
        root = tmp_path / "certstore"
        store = LocalDirStore(root)
        record = make_record()

        store.put_certificate(record)

        assert_same_record(store.get_certificate(record.fqdn), record)
        assert temp_files(root) == temp_files(root / "certificates") == []  # probe and temp

    def test_a_failed_write_raises_storage_error(
        self, local_store: tuple[LocalDirStore, Path]
    ) -> None:
        store, root = local_store
        shutil.rmtree(root / "certificates")  # a file in its place: stands in for a broken disk
        (root / "certificates").write_text("not a directory")

        with pytest.raises(StorageError):
            store.put_certificate(make_record())


@pytest.fixture
def s3_store(aws_resources: AwsResources) -> S3Store:
    return S3Store(
        aws_resources.session.client("s3"), aws_resources.bucket, aws_resources.kms_key_id
    )


def object_versions(aws: AwsResources, fqdn: str) -> list[dict[str, Any]]:
    response = aws.session.client("s3").list_object_versions(
        Bucket=aws.bucket, Prefix=object_key(fqdn)
    )
    return [
        version for version in response.get("Versions", []) if version["Key"] == object_key(fqdn)
    ]


class TestS3Store:
    """What only the S3 adapter promises: SSE-KMS with our key, one version, our own errors."""

    def test_objects_are_written_with_sse_kms_and_the_given_key(
        self, s3_store: S3Store, aws_resources: AwsResources
    ) -> None:
        record = make_record()

        s3_store.put_certificate(record)

        head = aws_resources.session.client("s3").head_object(
            Bucket=aws_resources.bucket, Key=f"certificates/{record.fqdn}.json"
        )
        assert head["ServerSideEncryption"] == "aws:kms"
        assert aws_resources.kms_key_id in head["SSEKMSKeyId"]
        assert head["ContentType"] == "application/json"

    def test_a_rejected_second_put_leaves_exactly_one_version(
        self, s3_store: S3Store, aws_resources: AwsResources
    ) -> None:
        first = make_record()
        s3_store.put_certificate(first)
        (stored_version,) = object_versions(aws_resources, first.fqdn)

        with pytest.raises(AlreadyExists):
            s3_store.put_certificate(make_record(serial="ff", private_key_pem=ROOT_PEM))

        assert object_versions(aws_resources, first.fqdn) == [stored_version]
        assert stored_version["IsLatest"] is True
        assert_same_record(s3_store.get_certificate(first.fqdn), first)

    def test_sequential_puts_of_one_fqdn_let_exactly_the_first_win(
        self, s3_store: S3Store, aws_resources: AwsResources
    ) -> None:
        """TestConcurrentPuts for S3: moto's conditional put is not atomic across threads."""
        contenders = [make_record(serial=f"{index:040x}") for index in range(8)]
        outcomes: list[str] = []

        for record in contenders:
            try:
                s3_store.put_certificate(record)
                outcomes.append("stored")
            except AlreadyExists:
                outcomes.append("already-exists")

        assert outcomes == ["stored"] + ["already-exists"] * 7
        assert_same_record(s3_store.get_certificate(contenders[0].fqdn), contenders[0])
        assert [record.serial for record in s3_store.iter_certificates()] == [contenders[0].serial]
        assert len(object_versions(aws_resources, contenders[0].fqdn)) == 1

    @pytest.mark.parametrize(
        "operation",
        [
            pytest.param(lambda store: store.put_certificate(make_record()), id="put"),
            pytest.param(lambda store: store.get_certificate(make_record().fqdn), id="get"),
            pytest.param(lambda store: store.exists(make_record().fqdn), id="exists"),
            pytest.param(lambda store: list(store.iter_certificates()), id="iter"),
        ],
    )
    def test_a_missing_bucket_raises_storage_error(
        self, aws_resources: AwsResources, operation: Callable[[S3Store], object]
    ) -> None:
        store = S3Store(
            aws_resources.session.client("s3"), "no-such-bucket", aws_resources.kms_key_id
        )

        with pytest.raises(StorageError) as raised:
            operation(store)

        assert isinstance(raised.value.__cause__, ClientError)
        assert raised.value.__cause__.response["Error"]["Code"] == "NoSuchBucket"


class SlowThenFailingS3:
    """An S3 client stand-in for one bulk: one write fails at once, one takes half a second (a
    slow retry) and every other write a few milliseconds."""

    def __init__(self, slow_key: str, failing_key: str) -> None:
        self.slow_key, self.failing_key = slow_key, failing_key
        self.started: list[str] = []
        self._lock = threading.Lock()

    def put_object(self, **request: Any) -> dict[str, Any]:
        with self._lock:
            self.started.append(request["Key"])
        if request["Key"] == self.failing_key:
            error = {"Error": {"Code": "InternalError", "Message": "We encountered an error"}}
            raise ClientError(error, "PutObject")  # type: ignore[arg-type]
        time.sleep(0.5 if request["Key"] == self.slow_key else 0.005)
        return {}


class TestS3BulkWrites:
    """Concurrent PutObject calls: no new write starts once one has failed, in any order."""

    def test_a_failure_stops_new_writes_even_while_an_earlier_one_is_in_flight(self) -> None:
        records = [make_record(f"bulk-{n:03d}.{CELL}", serial=f"{n:040x}") for n in range(300)]
        client = SlowThenFailingS3(object_key(records[0].fqdn), object_key(records[1].fqdn))
        reported: list[str] = []

        written = S3Store(client, "bucket").put_certificates(
            records, on_stored=lambda record: reported.append(record.fqdn)
        )

        assert isinstance(written.failure, StorageError)
        assert "InternalError" in str(written.failure)
        assert len(client.started) <= 3 * WRITERS  # not the 300 of the bulk
        stored = [record.fqdn for record in written.stored]
        assert records[0].fqdn in stored and records[1].fqdn not in stored
        assert sorted(reported) == sorted(stored)
        assert {object_key(fqdn) for fqdn in stored} == set(client.started) - {
            object_key(records[1].fqdn)
        }

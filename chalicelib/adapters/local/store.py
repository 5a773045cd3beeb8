"""The local certificate store: one file per document under CERTSTORE_DIR."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from chalicelib.adapters.documents import OBJECT_PREFIX, DocumentStore, generations_prefix
from chalicelib.errors import StorageError

TEMP_PREFIX = ".tmp-"
"""Names of temporary files of writes in progress (never read as documents)."""
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC
_ANONYMOUS_TEMP_FLAGS = getattr(os, "O_TMPFILE", 0) and os.O_TMPFILE | os.O_WRONLY | _CLOEXEC
"""O_TMPFILE (Linux): a file with no name until it is linked; 0 where the system has none."""


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
        """Every key under `prefix` (a directory), in its subdirectories too, as S3 lists."""
        try:
            entries = list(os.scandir(os.path.join(self._root, prefix)))
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from self._keys(f"{prefix}{entry.name}/")
            elif entry.is_file():
                yield prefix + entry.name

    def _delete(self, key: str) -> None:
        path = os.path.join(self._root, key)
        try:
            os.unlink(path)
        except OSError as err:
            if _is_absent(err):
                return
            raise StorageError(f"could not remove {key}: {err}") from err
        if self._durable:
            self._sync_directory(os.path.dirname(path))

    def _deleted_generations(self, fqdn: str) -> None:
        """The renewals' folder goes too, once empty (a renewal writing into it meanwhile
        keeps it: rmdir refuses a folder that is not empty)."""
        directory = os.path.join(self._root, generations_prefix(fqdn).rstrip("/"))
        self._directories.discard(directory)
        with contextlib.suppress(OSError):
            os.rmdir(directory)

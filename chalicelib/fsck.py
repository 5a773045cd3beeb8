"""`python -m chalicelib.fsck [--repair]`: integrity check of the local backend's data.

It names every problem it finds, one line each, and exits 1 when any is left:
- temporary files of writes that never completed (a crash): --repair deletes them;
- an inventory database SQLite cannot read: --repair sets it aside and builds a new one from
  the certificates;
- a certificate or revocation document that cannot be read (empty, truncated, not what its
  name says): --repair rewrites a corrupt revocation as a revocation of every generation it
  could have covered (reason unspecified), setting the corrupt one aside; a corrupt certificate
  cannot be rebuilt and stays a problem;
- certificates the inventory does not list, or lists at an earlier generation, and generations
  of a revoked certificate that no revocation covers (a renewal that crashed between its write
  and its look): --repair adds and covers them;
- a CA whose key its key store (PKCS#11) does not hold, or holds another one, and a key of the
  stage in the token that no CA holds (a CA whose write never happened): named, never repaired
  (a key is never destroyed by a check; `PKCS11_*` must name the token, as for the server).
It never prints a traceback: a failure it cannot describe more precisely ends with one line.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from chalicelib import wiring
from chalicelib.config import LOCAL_BACKEND, load_settings
from chalicelib.errors import AlreadyExists, CorruptDocument, NotFound
from chalicelib.model import RevocationRecord
from chalicelib.ports.store import CertificateStore
from chalicelib.revocation import cover_generations


class Maintenance(Protocol):
    """The local store's files beyond the ports (wiring.local_maintenance)."""

    inventory_path: Path

    def temporary_files(self) -> list[Path]: ...

    def inventory_problem(self) -> str | None: ...

    def set_inventory_aside(self) -> Path: ...

    def set_document_aside(self, key: str) -> Path: ...

    def modified_at(self, key: str) -> float: ...


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    unrepaired: int = 0

    def found(self, problem: str, repaired: bool = False) -> None:
        self.problems.append(problem)
        print(problem + (" (repaired)" if repaired else ""))
        if not repaired:
            self.unrepaired += 1


def main(arguments: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true", help="repair what can be repaired")
    options = parser.parse_args(arguments)
    try:
        return _check(options.repair)
    except Exception as err:  # one line, never a traceback
        print(f"fsck: stopped: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


def _check(repair: bool) -> int:
    settings = load_settings()
    if settings.backend != LOCAL_BACKEND:
        print("fsck checks the local backend; on AWS use `make reconcile`", file=sys.stderr)
        return 2
    maintenance = wiring.local_maintenance(settings)
    findings = Findings()
    for orphan in maintenance.temporary_files():
        if repair:
            orphan.unlink()
        findings.found(f"orphan temporary file: {orphan}", repaired=repair)
    inventory_problem = maintenance.inventory_problem()
    if inventory_problem is not None:
        where = maintenance.inventory_path
        if repair:
            aside = maintenance.set_inventory_aside()
            findings.found(
                f"corrupt inventory database {where}: {inventory_problem}; set aside as "
                f"{aside} and rebuilt from the certificates",
                repaired=True,
            )
        else:
            findings.found(f"corrupt inventory database {where}: {inventory_problem}")
            print("fsck: the inventory checks need a readable database: run with --repair")
            return _verdict(findings, repair)
    service = wiring.build_service(settings)
    store = service.store
    for corrupt in _corrupt_documents(store):
        if repair and _rewrite_revocation(store, maintenance, corrupt):
            findings.found(
                f"corrupt document {corrupt.key}: {corrupt.problem}; rewritten as a revocation "
                "of every generation it may have covered",
                repaired=True,
            )
            continue
        findings.found(f"corrupt document {corrupt.key}: {corrupt.problem}")
    for fqdn in service.missing_inventory_items():
        findings.found(f"certificate without an up-to-date inventory item: {fqdn}", repair)
    for fqdn, serial in service.uncovered_generations():
        findings.found(f"revoked certificate {fqdn} has an unrevoked generation {serial}", repair)
    for fqdn, ca in service.orphaned_certificates():
        findings.found(f"certificate {fqdn} was issued by CA {ca}, which was deleted: delete it")
    for problem in service.held_key_problems():
        findings.found(problem)
    if repair:
        service.reconcile_inventory()
    return _verdict(findings, repair)


def _verdict(findings: Findings, repair: bool) -> int:
    if not findings.problems:
        print("fsck: clean")
        return 0
    left = findings.unrepaired
    repaired = len(findings.problems) - left
    summary = f"fsck: {len(findings.problems)} problem(s) found"
    if repair:
        summary += f", {repaired} repaired, {left} left"
    print(summary)
    return 1 if left else 0


def _corrupt_documents(store: CertificateStore) -> list[CorruptDocument]:
    corrupt: list[CorruptDocument] = []
    for _ in store.iter_certificates(on_corrupt=corrupt.append, every_generation=True):
        pass
    for _ in store.iter_revocations(on_corrupt=corrupt.append):
        pass
    return sorted(corrupt, key=lambda found: found.key)


def _rewrite_revocation(
    store: CertificateStore, maintenance: Maintenance, corrupt: CorruptDocument
) -> bool:
    """A corrupt `revocations/<issuer>/<fqdn>[@<serial>].json`, made good the safe way: the
    certificate (or that one generation) revoked, reason unspecified, at the file's time."""
    parts = corrupt.key.removesuffix(".json").split("/")
    if len(parts) != 3 or parts[0] != "revocations" or not corrupt.key.endswith(".json"):
        return False
    issuer, name = parts[1], parts[2]
    fqdn, _, serial = name.partition("@")
    try:
        generations = store.list_generations(fqdn)
    except (NotFound, CorruptDocument):  # nothing to revoke for sure: it stays a problem
        return False
    revoked_at = datetime.fromtimestamp(int(maintenance.modified_at(corrupt.key)), UTC)
    if serial:
        revocation = RevocationRecord(fqdn, issuer, serial, "unspecified", revoked_at,
                                      generation_only=True)  # fmt: skip
    else:
        serials = tuple(generation.serial for generation in generations)
        revocation = RevocationRecord(fqdn, issuer, serials[-1], "unspecified", revoked_at,
                                      serials=serials if len(serials) > 1 else ())  # fmt: skip
    maintenance.set_document_aside(corrupt.key)
    try:
        store.put_revocation(revocation)
    except AlreadyExists:
        return False
    if not serial:
        cover_generations(store, revocation, revoked_at)
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

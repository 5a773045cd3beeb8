"""CertificateStore port: write-once certificate and revocation documents.

Every document is written once: a second write of the same key raises AlreadyExists and leaves
the first untouched, so a renewal and a revocation are new documents, never edits, and of two
renewals of the same generation only one is stored. The current generation of a certificate is
the highest one stored. The adapters share the document layout (chalicelib.adapters.documents).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.errors import CorruptDocument
from chalicelib.model import CertificateRecord, RevocationRecord

OnStored = Callable[[CertificateRecord], object]
OnCorrupt = Callable[[CorruptDocument], object]


def nothing(record: CertificateRecord) -> None:
    """The default `on_stored`."""


class CertificateStore(Protocol):
    writers: int
    """Calls of the store worth making at once (1 where they are bound by the CPU, as local
    files are; more where each waits on the network, as S3's do)."""

    def put_certificate(self, record: CertificateRecord) -> None:
        """Write a new certificate, or a new generation of one (`record.generation`);
        AlreadyExists if the FQDN (the generation) is taken: nothing is overwritten."""

    def put_certificates(
        self, records: Iterable[CertificateRecord], on_stored: OnStored = nothing
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

    def generation_numbers(self, fqdn: str) -> list[int]:
        """The numbers of the stored generations, ascending; NotFound if there is none."""

    def certificate_states(self, names: Sequence[tuple[str, str]]) -> list[CertificateState]:
        """For each (issuer FQDN, FQDN): its current generation and whether it is revoked, each
        read from the store now, never from a cache (what another process wrote a moment ago is
        seen). An adapter whose reads wait on the network asks for all of them at once."""

    def exists(self, fqdn: str) -> bool: ...

    def iter_certificates(
        self, on_corrupt: OnCorrupt | None = None, every_generation: bool = False
    ) -> Iterator[CertificateRecord]:
        """The current generation of every stored certificate (with `every_generation`, each
        generation), in no particular order. A document that cannot be read raises
        CorruptDocument, or with `on_corrupt` is handed to it and skipped."""

    def iter_revocations(self, on_corrupt: OnCorrupt | None = None) -> Iterator[RevocationRecord]:
        """Every revocation document, in no particular order; corrupt ones as above."""

    def delete_certificate(self, fqdn: str) -> int:
        """Remove every generation of the certificate, the renewals first (the highest first)
        and the first generation last, so that a deletion stopped half way leaves it stored
        and to be deleted again; its revocation documents stay. How many generations were
        found (0: none was stored). The one removal in a store of write-once documents: only
        a revoked certificate is deleted (chalicelib.deletion)."""

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
        of them (for its CRL); CorruptDocument names one that cannot be read."""


@dataclass(frozen=True)
class CertificateState:
    """What `certificate_states` reads of one certificate."""

    generation: int  # the current one (1 when never renewed)
    revoked: bool  # the certificate itself (every generation of it) is revoked


@dataclass(frozen=True)
class BulkWrite:
    stored: list[CertificateRecord]
    failure: Exception | None = None

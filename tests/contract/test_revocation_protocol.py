"""The revocation protocol, every interleaving: renewal x revocation (of a device and of a cell
CA), bulk x revocation of its CA, CA rollover x issuance, and the deletion of a revoked
certificate x its renewal and of a revoked CA x an issuance under it, on the local backend
(files and SQLite) and on the AWS one (S3 and DynamoDB under moto). docs/design.md states the
protocol; tests/interleavings.py drives the interleavings.

The invariant everywhere: once a revocation is acknowledged, no generation it covers is active:
each is revoked (its own status, or its CA's) and on its CA's CRL; and no chain the service
answers with holds a certificate that was revoked, or superseded by a newer generation, at the
moment the chain was read.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chalicelib import issuer
from chalicelib.adapters.aws.inventory import DynamoInventory
from chalicelib.adapters.aws.store import S3Store
from chalicelib.adapters.documents import DocumentStore
from chalicelib.adapters.local.events import InProcessPublisher
from chalicelib.adapters.local.importer import NullImporter
from chalicelib.adapters.local.inventory import SqliteInventory
from chalicelib.adapters.local.store import LocalDirStore
from chalicelib.authority import REMOTE_REVOCATION_RECHECK
from chalicelib.errors import CaRevoked, CertificateIsRevoked, Conflict, NotFound
from chalicelib.events import CertificateEvent
from chalicelib.issuer import RevokedDuringBulk
from chalicelib.model import CertType, IssuedCertificate, IssueRequest, RenewRequest
from chalicelib.revocation import revocation_of
from chalicelib.service import CertificateService
from devtools.aws_resources import AWS_ENVIRONMENT
from tests.backends import moto_account
from tests.interleavings import Controller, Run, explore, stepping_store

ROOT = "example.com"
DEVICES = "devices.example.com"
EXPECTED = (Conflict,)  # a 409 is an outcome, not a failure


Steps = dict[str, Callable[[str, str], bool]]
"""Operation -> (primitive, key) -> whether that call of it is a step."""


@dataclass
class Scenario:
    """The service on a stepping store, and what the current interleaving pauses on."""

    service: CertificateService
    store: DocumentStore
    controller: Controller | None = None
    steps: Steps | None = None

    def pause_on(self, controller: Controller, steps: Steps) -> None:
        self.controller, self.steps = controller, steps

    def contended(self, operation: str, primitive: str, key: str) -> bool:
        return self.steps is not None and self.steps[operation](primitive, key)


def writes(prefixes: tuple[str, ...], reads: tuple[str, ...] = ()) -> Callable[[str, str], bool]:
    """An operation's steps: its writes under `prefixes`, and its reads under `reads` (what the
    other operation writes)."""

    def step(primitive: str, key: str) -> bool:
        if primitive == "create":
            return key.startswith(prefixes)
        return key.startswith(reads) if reads else False

    return step


def _service(
    store: DocumentStore, inventory: Any, revocation_recheck: Any = None
) -> CertificateService:
    service: CertificateService

    def deliver(events: list[CertificateEvent]) -> None:
        service.record_events(events)

    extra = {} if revocation_recheck is None else {"revocation_recheck": revocation_recheck}
    service = CertificateService(store, inventory, InProcessPublisher(deliver), NullImporter(),
                                 **extra)  # fmt: skip
    return service


@pytest.fixture(params=["local", pytest.param("aws", marks=[pytest.mark.moto, pytest.mark.slow])])
def scenario(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Scenario]:
    holder: list[Scenario] = []

    def contended(operation: str, primitive: str, key: str) -> bool:
        return holder[0].contended(operation, primitive, key)

    def controller() -> Controller | None:
        return holder[0].controller if holder else None

    if request.param == "local":
        store_class = stepping_store(LocalDirStore, contended, controller)
        store = store_class(tmp_path / "store")
        inventory = SqliteInventory(tmp_path / "store" / "inventory.sqlite3")
        holder.append(Scenario(_service(store, inventory), store))
        yield _with_hierarchy(holder[0])
        return
    with moto_account(monkeypatch, AWS_ENVIRONMENT) as (session, resources):
        s3_class = stepping_store(S3Store, contended, controller)
        store = s3_class(
            session.client("s3"), AWS_ENVIRONMENT["CERTIFICATE_BUCKET_NAME"],
            resources["kms_key_id"],
        )  # fmt: skip
        inventory = DynamoInventory(
            session.client("dynamodb"), AWS_ENVIRONMENT["INVENTORY_TABLE_NAME"],
            AWS_ENVIRONMENT["INVENTORY_INDEX_NAME"],
        )  # fmt: skip
        holder.append(Scenario(_service(store, inventory, REMOTE_REVOCATION_RECHECK), store))
        yield _with_hierarchy(holder[0])


def _with_hierarchy(scenario: Scenario) -> Scenario:
    service = scenario.service
    service.create_root(IssueRequest(CertType.ROOT, fqdn=ROOT))
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=DEVICES, path_length=1))
    return scenario


_cells = itertools.count(1)


def new_cell(service: CertificateService, parent: str = DEVICES) -> str:
    fqdn = f"cell{next(_cells)}.{parent}"
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=fqdn))
    return fqdn


def new_parent(service: CertificateService) -> str:
    """A CA of its own for one run, so that its CRL lists that run's revocations only."""
    fqdn = f"devices{next(_cells)}.{ROOT}"
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=fqdn, path_length=1))
    return fqdn


def new_device(service: CertificateService, cell: str) -> IssuedCertificate:
    return service.create_device(IssueRequest(CertType.CLIENT, parent_fqdn=cell))


def crl_serials(service: CertificateService, ca: str) -> set[int]:
    return {entry.serial_number for entry in service.certificate_revocation_list(ca)}


def every_generation_is_revoked_and_listed(scenario: Scenario, fqdn: str, issuer_fqdn: str) -> None:
    """Each generation has a revocation that covers it (its own, or the certificate's: what GET
    reads, without building its chain) and is on its issuer's CRL."""
    listed = crl_serials(scenario.service, issuer_fqdn)
    for generation in scenario.store.list_generations(fqdn):
        covering = revocation_of(scenario.store, generation)
        assert covering is not None, f"generation {generation.generation} is active"
        assert int(generation.serial, 16) in listed, f"generation {generation.generation}"


def test_renewal_racing_a_revocation_never_leaves_a_generation_active(
    scenario: Scenario,
) -> None:
    service = scenario.service
    names: dict[str, str] = {}

    def prepare(controller: Controller) -> dict[str, Callable[[], Any]]:
        cell = names["cell"] = new_cell(service)  # a CRL of this run's revocation only
        fqdn = names["device"] = new_device(service, cell).record.fqdn
        generations, revocations = f"certificates/{fqdn}/", f"revocations/{cell}/{fqdn}"
        scenario.pause_on(controller, {
            "renewal": writes((generations, revocations), reads=(revocations,)),
            "revocation": writes((revocations,), reads=(generations, revocations)),
        })  # fmt: skip
        return {
            "renewal": lambda: service.renew(fqdn, RenewRequest()),
            "revocation": lambda: service.revoke(fqdn, "keyCompromise"),
        }

    def check(run: Run) -> None:
        fqdn, cell = names["device"], names["cell"]
        renewal = run.outcomes["renewal"]
        assert not isinstance(run.outcomes["revocation"], Exception), run.outcomes
        assert isinstance(renewal, IssuedCertificate | CertificateIsRevoked), renewal
        every_generation_is_revoked_and_listed(scenario, fqdn, cell)
        with pytest.raises(Conflict, match="already revoked"):
            service.revoke(fqdn, "keyCompromise")

    assert explore(prepare, check, EXPECTED) >= 20  # the two meet in many orders


def test_a_ca_renewal_racing_its_revocation_never_leaves_it_or_below_it_active(
    scenario: Scenario,
) -> None:
    service = scenario.service
    names: dict[str, str] = {}

    def prepare(controller: Controller) -> dict[str, Callable[[], Any]]:
        parent = names["parent"] = new_parent(service)
        cell = names["cell"] = new_cell(service, parent)
        names["device"] = new_device(service, cell).record.fqdn
        generations, revocations = f"certificates/{cell}/", f"revocations/{parent}/{cell}"
        scenario.pause_on(controller, {
            "renewal": writes((generations, revocations), reads=(revocations,)),
            "revocation": writes((revocations,), reads=(generations, revocations)),
        })  # fmt: skip
        return {
            "renewal": lambda: service.renew(cell, RenewRequest()),
            "revocation": lambda: service.revoke(cell, "keyCompromise"),
        }

    def check(run: Run) -> None:
        parent, cell, device = names["parent"], names["cell"], names["device"]
        assert isinstance(run.outcomes["renewal"], IssuedCertificate | CertificateIsRevoked)
        every_generation_is_revoked_and_listed(scenario, cell, parent)
        below = service.get_certificate(device)
        assert below.revocation is not None and below.revoked_with == cell
        assert below.chain_pem == ""  # no chain through a revoked CA is served
        device_serial = int(below.record.serial, 16)
        assert device_serial in crl_serials(service, cell)  # for leaf-only CRL checkers

    assert explore(prepare, check, EXPECTED) >= 10


def test_a_bulk_racing_its_ca_revocation_stores_nothing_that_stays_active(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = scenario.service
    monkeypatch.setattr(issuer, "CHECKPOINT", 2)  # a look after every second certificate
    names: dict[str, str] = {}

    def prepare(controller: Controller) -> dict[str, Callable[[], Any]]:
        cell = names["cell"] = new_cell(service)
        revocation = f"revocations/{DEVICES}/{cell}"

        def bulk_steps(primitive: str, key: str) -> bool:  # its writes, and looks at the CA
            stored = primitive == "create" and key.startswith("certificates/")
            return stored or key.startswith(revocation)

        scenario.pause_on(controller, {"bulk": bulk_steps, "revocation": writes((revocation,))})
        request = IssueRequest(CertType.CLIENT, parent_fqdn=cell, count=5)
        return {
            "bulk": lambda: service.create_devices(request),
            "revocation": lambda: service.revoke(cell, "keyCompromise"),
        }

    def check(run: Run) -> None:
        cell = names["cell"]
        revoked_at = run.index("revocation", "create", f"revocations/{DEVICES}/{cell}.json")
        assert revoked_at is not None
        stored = [
            (position, step.key.removeprefix("certificates/").removesuffix(".json"))
            for position, step in enumerate(run.trace)
            if step.operation == "bulk"
            and step.primitive == "create"
            and step.key.startswith("certificates/")
        ]
        listed = crl_serials(service, cell)
        for position, fqdn in stored:
            details = service.get_certificate(fqdn)
            assert details.revocation is not None, f"{fqdn} is active below a revoked CA"
            assert int(details.record.serial, 16) in listed
            if position > revoked_at:  # stored after the revocation: revoked on its own
                own = scenario.store.get_revocation(cell, fqdn)
                assert own is not None, f"{fqdn}, stored after the revocation, is not revoked"
        bulk = run.outcomes["bulk"]
        if isinstance(bulk, list):  # answered 201: its last look came before the revocation
            assert run.last("bulk") < revoked_at
            assert len(bulk) == 5
        else:
            assert isinstance(bulk, RevokedDuringBulk | CaRevoked), bulk

    assert explore(prepare, check, EXPECTED) >= 10


def test_an_issuance_racing_a_ca_rollover_answers_with_the_chain_current_when_it_looked(
    scenario: Scenario,
) -> None:
    service = scenario.service
    names: dict[str, str] = {}

    def prepare(controller: Controller) -> dict[str, Callable[[], Any]]:
        cell = names["cell"] = new_cell(service)
        generations, revocations = f"certificates/{cell}/", f"revocations/{DEVICES}/{cell}"
        scenario.pause_on(controller, {
            "rollover": writes((generations, revocations)),
            "issuance": writes((), reads=(generations, revocations)),
        })  # fmt: skip
        return {
            "rollover": lambda: service.renew(cell, RenewRequest(revoke_previous=True)),
            "issuance": lambda: new_device(service, cell),
        }

    def check(run: Run) -> None:
        cell = names["cell"]
        rollover, issued = run.outcomes["rollover"], run.outcomes["issuance"]
        assert isinstance(rollover, IssuedCertificate) and isinstance(issued, IssuedCertificate)
        first, second = scenario.store.list_generations(cell)
        answered = x509.load_pem_x509_certificates(issued.chain_pem.encode())[0]
        new_generation = run.index("rollover", "create", f"certificates/{cell}/000002")
        issuer_looked = max(
            position
            for position, step in enumerate(run.trace)
            if step.operation == "issuance" and step.key == f"certificates/{cell}/"
        )  # fmt: skip, the last listing of the cell's generations: the look after the write
        assert new_generation is not None
        expected = second if new_generation < issuer_looked else first
        assert answered.serial_number == int(expected.serial, 16)
        superseded = run.index("rollover", "create", f"{cell}@{first.serial}")
        if expected is first:  # the answer's cell was not yet superseded when it was read
            assert superseded is not None and superseded > issuer_looked
        served = service.get_certificate(issued.record.fqdn)
        assert served.revocation is None
        assert x509.load_pem_x509_certificates(served.chain_pem.encode())[0].serial_number == int(
            second.serial, 16
        )

    assert explore(prepare, check, EXPECTED) >= 10


def nothing_stored_of(scenario: Scenario, fqdn: str) -> None:
    """No generation document of `fqdn` is left, nor its inventory item."""
    store = scenario.store
    assert not store.exists(fqdn), f"{fqdn} is still stored"
    assert list(store._keys(f"certificates/{fqdn}/")) == [], f"a generation of {fqdn} is left"


def test_a_renewal_racing_the_revocation_and_deletion_of_its_certificate_leaves_nothing(
    scenario: Scenario,
) -> None:
    """Delete a device (revoke, then delete) while it is renewed: whatever the order, no
    document of it is left, and every generation that was answered for is on the CRL."""
    service = scenario.service
    names: dict[str, str] = {}

    def prepare(controller: Controller) -> dict[str, Callable[[], Any]]:
        cell = names["cell"] = new_cell(service)
        device = new_device(service, cell).record
        fqdn = names["device"] = device.fqdn
        names["serial"] = device.serial
        documents, revocations = f"certificates/{fqdn}", f"revocations/{cell}/{fqdn}"
        first = f"{documents}.json"

        def renewal_steps(primitive: str, key: str) -> bool:  # its writes, its look at the first
            return primitive == "create" or (primitive == "exists" and key == first)

        def deletion_steps(primitive: str, key: str) -> bool:  # its revocation, its removals
            # (each listing of the generations runs just before the removals it leads to)
            return key.startswith(revocations) if primitive == "create" else primitive == "delete"

        scenario.pause_on(controller, {"renewal": renewal_steps, "deletion": deletion_steps})

        def revoke_and_delete() -> Any:
            service.revoke(fqdn, "cessationOfOperation")
            return service.delete(fqdn)

        return {
            "renewal": lambda: service.renew(fqdn, RenewRequest()),
            "deletion": revoke_and_delete,
        }

    def check(run: Run) -> None:
        fqdn, cell = names["device"], names["cell"]
        assert run.outcomes["deletion"].deleted == 1, run.outcomes
        renewal = run.outcomes["renewal"]
        assert isinstance(renewal, IssuedCertificate | CertificateIsRevoked | NotFound), renewal
        nothing_stored_of(scenario, fqdn)
        assert service.inventory.list_children(cell, 10, None).items == []
        listed = crl_serials(service, cell)
        assert int(names["serial"], 16) in listed
        if isinstance(renewal, IssuedCertificate):  # answered for: revoked with the rest
            assert int(renewal.record.serial, 16) in listed

    assert explore(prepare, check, (*EXPECTED, NotFound)) >= 10


def test_an_issuance_racing_the_revocation_and_deletion_of_its_ca_leaves_nothing_below_it(
    scenario: Scenario,
) -> None:
    """Delete a cell (revoke, then delete with what it issued) while a device is issued under
    it: whatever the order, nothing of the cell is left stored or listed."""
    service = scenario.service
    names: dict[str, str] = {}

    def prepare(controller: Controller) -> dict[str, Callable[[], Any]]:
        cell = names["cell"] = new_cell(service)
        cell_document, revocation = f"certificates/{cell}.json", f"revocations/{DEVICES}/{cell}"

        def issuance_steps(primitive: str, key: str) -> bool:  # its write, its look at the CA
            if primitive == "create":
                return key.startswith("certificates/") and key.endswith(f".{cell}.json")
            return primitive == "exists" and key == cell_document

        def deletion_steps(primitive: str, key: str) -> bool:  # its revocation, its removals
            return key.startswith(revocation) if primitive == "create" else primitive == "delete"

        scenario.pause_on(controller, {"issuance": issuance_steps, "deletion": deletion_steps})

        def revoke_and_delete() -> Any:
            service.revoke(cell, "cessationOfOperation")
            return service.delete(cell, cascade=True)

        return {"issuance": lambda: new_device(service, cell), "deletion": revoke_and_delete}

    def check(run: Run) -> None:
        cell = names["cell"]
        assert run.outcomes["deletion"].deleted >= 1, run.outcomes
        issued = run.outcomes["issuance"]
        assert isinstance(issued, IssuedCertificate | CaRevoked), issued
        nothing_stored_of(scenario, cell)
        left = [record.fqdn for record in scenario.store.iter_certificates()
                if record.parent_fqdn == cell]  # fmt: skip
        assert left == [], f"stored under the deleted {cell}: {left}"
        assert service.inventory.list_children(cell, 10, None).items == []

    assert explore(prepare, check, EXPECTED) >= 10

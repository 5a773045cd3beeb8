"""A CA's revocation carried down to AWS IoT: every certificate registered below it is REVOKED;
and a deletion's: what was registered of it is removed (`IotRemoval`).

AWS IoT does not read CRLs and keeps accepting a device whose CA registration is merely
INACTIVE, so the revocation of a CA must reach each device certificate in its registry. The walk
goes down the CA's subtree (the CAs below it, from the inventory), and for every generation of
each CA asks AWS IoT for the certificates registered under it, a page at a time, revoking each
one not revoked yet; the CAs below the revoked one are made INACTIVE too. Every step is
idempotent, so a retried or replayed walk does no harm.

A cell of ten thousand devices takes ten thousand UpdateCertificate calls, more than one
invocation of the event handler may spend: the walk stops when its time is up and hands on a
`Cursor`, which the handler publishes as a `revocation-cascade` event for the next invocation
(bench/ models the time per device and the invocations a cell takes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from chalicelib.events import CertificateDeleted
from chalicelib.kinds import policy_for
from chalicelib.ports.inventory import Inventory
from chalicelib.ports.iot_registry import IotRegistry
from chalicelib.ports.store import CertificateStore

logger = logging.getLogger(__name__)
CHILDREN_PAGE = 1000
TimeIsUp = Callable[[], bool]
STEP_IOT = "iot"
STEP_CHILDREN = "children"


def never() -> bool:
    return False


@dataclass(frozen=True)
class Cursor:
    """Where a walk stands: the CAs still to visit (the first is under way), what is being done
    for it, and where in that step (a generation of it and AWS IoT's page marker, or the FQDN
    its children are listed after)."""

    queue: tuple[str, ...]
    step: str = STEP_IOT
    generation: int = 0
    marker: str | None = None
    revoked_certificates: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "queue": list(self.queue)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Cursor:
        queue = data.get("queue")
        step = data.get("step", STEP_IOT)
        if not isinstance(queue, list) or step not in (STEP_IOT, STEP_CHILDREN):
            raise ValueError(f"not a cascade cursor: {data!r}")
        marker = data.get("marker")
        return cls(
            queue=tuple(str(fqdn) for fqdn in queue),
            step=step,
            generation=int(data.get("generation", 0)),
            marker=None if marker is None else str(marker),
            revoked_certificates=int(data.get("revoked_certificates", 0)),
        )


class RevocationCascade:
    def __init__(
        self, store: CertificateStore, inventory: Inventory, registry: IotRegistry | None
    ) -> None:
        self._store = store
        self._inventory = inventory
        self._registry = registry
        self._known: dict[str, list[str]] = {}

    def start(self, ca_fqdn: str) -> Cursor:
        return Cursor((ca_fqdn,))

    def run(self, cursor: Cursor, time_is_up: TimeIsUp = never) -> Cursor | None:
        """Walk on from `cursor` until done (None) or `time_is_up` (the cursor to go on from);
        at least one page each time, so that every invocation moves the walk on."""
        if self._registry is None or not self._registry.available:
            return None
        self._known = {}
        started = False
        while cursor.queue:
            if started and time_is_up():
                return cursor
            started = True
            if cursor.step == STEP_IOT:
                cursor, finished = self._iot_page(self._registry, cursor, time_is_up)
                if not finished:  # time ran out inside the page: it is listed again next time
                    return cursor
            else:
                cursor = self._children_page(cursor)
        logger.info("revocation cascade done: %d certificates revoked in AWS IoT",
                    cursor.revoked_certificates)  # fmt: skip
        return None

    def _iot_page(
        self, registry: IotRegistry, cursor: Cursor, time_is_up: TimeIsUp
    ) -> tuple[Cursor, bool]:
        """One page of what is registered under one generation of the CA: revoked, as far as
        the time allows (at least one); whether the page was finished. A page left half done is
        listed again by the next invocation, which skips what is REVOKED already."""
        fingerprints = self._fingerprints(cursor.queue[0])
        if cursor.generation >= len(fingerprints):
            return replace(cursor, step=STEP_CHILDREN, generation=0, marker=None), True
        ca_id = fingerprints[cursor.generation]
        if cursor.generation == 0 and cursor.marker is None:
            for fingerprint in fingerprints:  # each CA of the subtree: INACTIVE in AWS IoT
                registry.deactivate_ca(fingerprint)
        page, marker = registry.certificates_of_ca(ca_id, cursor.marker)
        revoked, calls = 0, 0
        for registered in page:
            if registered.status == "REVOKED":
                continue
            if calls and time_is_up():
                return replace(
                    cursor, revoked_certificates=cursor.revoked_certificates + revoked
                ), False
            calls += 1
            revoked += registry.revoke_certificate(registered.certificate_id)
        total = cursor.revoked_certificates + revoked
        if marker is not None:
            return replace(cursor, marker=marker, revoked_certificates=total), True
        next_generation = cursor.generation + 1
        return replace(
            cursor, generation=next_generation, marker=None, revoked_certificates=total
        ), True

    def _fingerprints(self, ca_fqdn: str) -> list[str]:
        """AWS IoT's IDs of every generation of the CA's certificate (read once per walk)."""
        if ca_fqdn not in self._known:
            generations = self._store.list_generations(ca_fqdn)
            self._known[ca_fqdn] = [record.fingerprint_sha256 for record in generations]
        return self._known[ca_fqdn]

    def _children_page(self, cursor: Cursor) -> Cursor:
        """One page of the CA's certificates: the CAs among them join the walk."""
        ca_fqdn = cursor.queue[0]
        page = self._inventory.list_children(ca_fqdn, CHILDREN_PAGE, cursor.marker)
        below = tuple(
            item.fqdn for item in page.items if policy_for(item.cert_type).signs_certificates
        )
        if page.last_fqdn is not None:
            return replace(cursor, queue=cursor.queue + below, marker=page.last_fqdn)
        return Cursor(cursor.queue[1:] + below, revoked_certificates=cursor.revoked_certificates)


class IotRemoval:
    """A deletion carried to AWS IoT: each deleted device's registration, then each deleted CA
    with every certificate registered under it (AWS IoT's own list by CA, so that devices
    registered just in time go too), are removed. Each step is idempotent; when time is up,
    what is left goes on in a new `deleted` event."""

    def __init__(self, registry: IotRegistry | None) -> None:
        self._registry = registry

    def run(
        self, event: CertificateDeleted, time_is_up: TimeIsUp = never
    ) -> CertificateDeleted | None:
        registry = self._registry
        if registry is None or not registry.available:
            return None
        certificates, cas = list(event.certificate_ids), list(event.ca_ids)
        calls = 0

        def rest() -> CertificateDeleted:
            return replace(event, certificate_ids=tuple(certificates), ca_ids=tuple(cas))

        while certificates:
            if calls and time_is_up():
                return rest()
            calls += 1
            registry.remove_certificate(certificates[0])
            certificates.pop(0)
        while cas:
            # always the first page: what is removed leaves AWS IoT's list
            page, _ = registry.certificates_of_ca(cas[0], None)
            removed = 0
            for registered in page:
                if calls and time_is_up():
                    return rest()
                calls += 1
                removed += registry.remove_certificate(registered.certificate_id)
            if not removed:  # nothing (more) registered under it
                registry.remove_ca(cas.pop(0))
        logger.info("deletion of %s carried to AWS IoT", event.fqdn)
        return None

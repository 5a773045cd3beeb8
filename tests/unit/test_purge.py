"""PURGE_EXPIRED_AFTER_DAYS (CertificateService.purge_expired) over in-memory fakes and a clock
the test moves: device certificates expired longer than that (and a day's margin) are deleted,
with their AWS IoT registration; nothing else is; and their renewal is refused from the limit
on, so that a renewal and the purge never meet."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.errors import Conflict, NotFound
from chalicelib.events import CertificateDeleted
from chalicelib.model import CertType, IssueRequest, RenewRequest
from tests.fakes import (
    NOW,
    InMemoryInventory,
    InMemoryStore,
    MovingClock,
    RecordingPublisher,
    make_service,
)

ROOT, CELL = "example.com", "cell1.example.com"


def test_devices_expired_past_the_limit_are_deleted_and_no_longer_renewed() -> None:
    clock, publisher, inventory, store = (
        MovingClock(),
        RecordingPublisher(),
        InMemoryInventory(),
        (InMemoryStore()),
    )
    service = make_service(store, inventory, publisher, clock=clock, purge_expired_after_days=30)
    service.create_root(IssueRequest(CertType.ROOT, fqdn=ROOT))
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=CELL))
    short = IssueRequest(CertType.CLIENT, parent_fqdn=CELL, validity_days=10)
    old, revoked, renewed = (service.create_device(short).record for _ in range(3))
    server = service.create_server(
        IssueRequest(CertType.SERVER, fqdn=f"mqtt.{CELL}", parent_fqdn=CELL, validity_days=10)
    ).record
    recent = service.create_device(
        IssueRequest(CertType.CLIENT, parent_fqdn=CELL, validity_days=30)
    ).record
    service.revoke(revoked.fqdn, "keyCompromise")
    clock.now = NOW + timedelta(days=35)  # `renewed` expired 25 days ago: still renewed
    renewal = service.renew(renewed.fqdn, RenewRequest(validity_days=10)).record
    service.record_events(publisher.events)
    publisher.events.clear()

    clock.now = NOW + timedelta(days=40, hours=12)  # old: expired 30.5 days ago
    with pytest.raises(Conflict, match="PURGE_EXPIRED_AFTER_DAYS=30"):
        service.renew(old.fqdn, RenewRequest())
    assert service.purge_expired(30) == 0  # within the day's margin: not yet

    clock.now = NOW + timedelta(days=41, hours=1)
    assert service.purge_expired(30) == 1
    with pytest.raises(NotFound):
        service.get_certificate(old.fqdn)
    assert inventory.find(old.fqdn, CELL) is None and inventory.is_removed(old.fqdn, CELL)
    [deleted] = [event for event in publisher.events if isinstance(event, CertificateDeleted)]
    assert (deleted.fqdn, deleted.certificate_ids) == (old.fqdn, (old.fingerprint_sha256,))
    for kept in (revoked, server, recent):  # revoked, not a device, not expired long enough
        assert service.get_certificate(kept.fqdn).record.serial == kept.serial
    assert service.get_certificate(renewed.fqdn).record.serial == renewal.serial

    clock.now = NOW + timedelta(days=200)  # the rest of the devices, each once
    assert service.purge_expired(30) == 2
    assert service.purge_expired(30) == 0
    listed = {item.fqdn for item in inventory.list_children(CELL, 10, None).items}
    assert listed == {revoked.fqdn, server.fqdn}

"""The expiry scan (CertificateService.notify_expiring) over in-memory fakes and a clock the test
moves: an `expiring` event per active certificate within the notice window, at most one a day
per certificate, none for a revoked certificate or a renewed certificate's earlier generation."""

from __future__ import annotations

from datetime import timedelta

from chalicelib.events import CertificateExpiring
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


def notices(publisher: RecordingPublisher) -> list[CertificateExpiring]:
    found = [event for event in publisher.events if isinstance(event, CertificateExpiring)]
    publisher.events.clear()
    return found


def test_each_certificate_within_the_window_is_announced_once_a_day() -> None:
    clock, publisher, inventory = MovingClock(), RecordingPublisher(), InMemoryInventory()
    service = make_service(InMemoryStore(), inventory, publisher, clock=clock)
    service.create_root(IssueRequest(CertType.ROOT, fqdn=ROOT))
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=CELL))
    device = IssueRequest(CertType.CLIENT, parent_fqdn=CELL, validity_days=10)
    soon, revoked, renewed = (service.create_device(device).record for _ in range(3))
    later = service.create_device(IssueRequest(CertType.CLIENT, parent_fqdn=CELL)).record
    service.revoke(revoked.fqdn, "keyCompromise")
    renewal = service.renew(renewed.fqdn, RenewRequest(validity_days=100))
    service.record_events(publisher.events)  # the inventory, as its handler keeps it
    publisher.events.clear()

    assert service.notify_expiring(30) == 1
    [notice] = notices(publisher)
    assert notice.to_detail() == {
        "FQDN": soon.fqdn, "Type": "Client", "ParentFQDN": CELL, "Serial": soon.serial,
        "NotAfter": "2026-01-11T00:00:00Z", "DaysLeft": 10,
    }  # fmt: skip
    assert notice.detail_type == "expiring"

    clock.now = NOW + timedelta(hours=20)  # the same day: nothing again
    assert service.notify_expiring(30) == 0 and notices(publisher) == []
    clock.now = NOW + timedelta(days=1)  # the next day: again, a day less left
    assert service.notify_expiring(30) == 1
    assert [n.days_left for n in notices(publisher)] == [9]
    clock.now = NOW + timedelta(days=80)  # the renewal's and `later`'s turn; `soon` expired
    assert sorted(n.fqdn for n in notices(publisher)) == []
    assert service.notify_expiring(30) == 1
    assert [(n.fqdn, n.serial) for n in notices(publisher)] == [
        (renewed.fqdn, renewal.record.serial)  # the current generation, not the renewed one
    ]
    assert later.not_after > clock.now + timedelta(days=30)

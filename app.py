"""iot-cert-service: the Chalice app. Routes live in chalicelib/api; this file wires them up."""

from __future__ import annotations

from chalice import Chalice, Rate
from chalice.app import CloudWatchEvent

from chalicelib import wiring
from chalicelib.api import middleware
from chalicelib.api.aws_iot import aws_iot
from chalicelib.api.certificates import certificates
from chalicelib.api.documents import BINARY_TYPES, documents
from chalicelib.api.portal import portal
from chalicelib.api.spec import spec
from chalicelib.events import CASCADE_EVENT_PATTERN, INVENTORY_EVENT_PATTERN

app = Chalice(app_name="iot-cert-service")
app.api.binary_types = list(BINARY_TYPES)  # only what the API serves; see BINARY_TYPES
app.register_blueprint(certificates)
app.register_blueprint(documents)
app.register_blueprint(spec)
app.register_blueprint(portal)
app.register_blueprint(aws_iot)
middleware.register(app)
middleware.configure_logging()


@app.on_cw_event(INVENTORY_EVENT_PATTERN, name="record_inventory")
def record_inventory(event: CloudWatchEvent) -> None:
    """Keeps the inventory on AWS: `created` adds an item, `revoked` marks it and reaches AWS
    IoT. (Locally the service hands its events to the same handlers in process.)"""
    wiring.certificate_service().record_event(event.detail_type, event.detail)


CASCADE_MARGIN_MS = 20_000
"""What an invocation of the cascade keeps of its time to hand the rest on (one page of AWS IoT
calls, then PutEvents)."""


@app.on_cw_event(CASCADE_EVENT_PATTERN, name="revocation_cascade")
def revocation_cascade(event: CloudWatchEvent) -> None:
    """Carries a CA's revocation to every certificate AWS IoT registered below it; what one
    invocation cannot finish goes on in the next (chalicelib.cascade)."""
    context = event.context

    def time_is_up() -> bool:
        return context is not None and context.get_remaining_time_in_millis() < CASCADE_MARGIN_MS

    wiring.certificate_service().cascade_detail(event.detail_type, event.detail, time_is_up)


@app.schedule(Rate(1, unit=Rate.DAYS), name="scan_expiring")
def scan_expiring(event: CloudWatchEvent) -> None:
    """The daily expiry scan: an `expiring` event for each active certificate within
    EXPIRY_NOTICE_DAYS, at most one a day each (CertificateService.notify_expiring); with
    PURGE_EXPIRED_AFTER_DAYS, long-expired devices deleted (purge_expired)."""
    wiring.scan_expiring()

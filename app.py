"""iot-cert-service: the Chalice app. Routes live in chalicelib/api; this file wires them up."""

from __future__ import annotations

from chalice import Chalice
from chalice.app import CloudWatchEvent

from chalicelib import wiring
from chalicelib.api import middleware
from chalicelib.api.aws_iot import aws_iot
from chalicelib.api.certificates import certificates
from chalicelib.api.documents import BINARY_TYPES, documents
from chalicelib.api.portal import portal
from chalicelib.api.spec import spec
from chalicelib.events import INVENTORY_EVENT_PATTERN

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
    IoT. (Locally the service hands its events to the same inventory keeper in process.)"""
    wiring.certificate_service().record_event(event.detail_type, event.detail)

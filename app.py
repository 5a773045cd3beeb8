"""iot-cert-service: the Chalice app. Routes live in chalicelib/api; this file wires them up."""

from __future__ import annotations

from chalice import Chalice
from chalice.app import CloudWatchEvent

from chalicelib import wiring
from chalicelib.api.certificates import certificates
from chalicelib.events import CREATED_EVENT_PATTERN
from chalicelib.localserver import tune_local_server

app = Chalice(app_name="iot-cert-service")
app.register_blueprint(certificates)


@app.on_cw_event(CREATED_EVENT_PATTERN, name="record_inventory")
def record_inventory(event: CloudWatchEvent) -> None:
    """Writes the inventory item of a `created` event (EventBridge on AWS, in-process locally)."""
    wiring.certificate_service().record_created_event(event.detail)


wiring.register_event_handler(record_inventory)
tune_local_server()

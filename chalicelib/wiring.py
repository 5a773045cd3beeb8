"""Builds the service from Settings, lazily, once per process; tests override or reset it.

Adapters are imported here and nowhere else in the product code. Building is deferred to the
first request so that boto3 clients (AWS backend) are created after moto starts in tests and no
backend work is done at import time (Lambda cold start).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from chalicelib.config import (
    AWS_BACKEND,
    HELPER_OFF,
    SYNC_FULL,
    ConfigurationError,
    Settings,
    load_settings,
)
from chalicelib.events import InProcessPublisher
from chalicelib.importer import NullImporter
from chalicelib.inventory import SqliteInventory
from chalicelib.issuance import DeviceSigner, InProcessSigner
from chalicelib.service import CertificateService
from chalicelib.store import LocalDirStore

EventHandler = Callable[[dict[str, Any], Any], object]

_lock = threading.Lock()
_service: CertificateService | None = None
_event_handler: EventHandler | None = None
_shared_signer: DeviceSigner | None = None
_signer_lock = threading.Lock()


def register_event_handler(handler: EventHandler) -> None:
    """app.py registers its `on_cw_event` inventory handler; the local backend calls it."""
    global _event_handler
    _event_handler = handler


def _deliver_to_event_handler(envelope: dict[str, Any]) -> object:
    if _event_handler is None:
        raise ConfigurationError("no inventory event handler is registered (import app first)")
    return _event_handler(envelope, None)


def certificate_service() -> CertificateService:
    global _service
    if _service is None:
        with _lock:
            if _service is None:
                _service = build_service(load_settings())
    return _service


def override_service(service: CertificateService | None) -> None:
    """Use `service` for every request (tests); None goes back to building from the environment."""
    global _service
    with _lock:
        _service = service


def reset() -> None:
    override_service(None)


def build_service(settings: Settings, boto_session: Any = None) -> CertificateService:
    """The service for the configured backend; `boto_session` lets tests observe AWS calls."""
    if settings.backend == AWS_BACKEND:
        return _build_aws_service(settings, boto_session)
    durable = settings.certstore_sync == SYNC_FULL
    inventory = SqliteInventory(settings.certstore_dir / "inventory.sqlite3", durable=durable)
    return CertificateService(
        store=LocalDirStore(settings.certstore_dir, durable=durable),
        inventory=inventory,
        publisher=InProcessPublisher(_deliver_to_event_handler, batch=inventory.batch),
        importer=NullImporter(),
        ca_key_passphrase=settings.ca_key_passphrase,
        signer=_local_signer(settings),
    )


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _local_signer(settings: Settings) -> DeviceSigner:
    """Bulks share signing with a helper process where a second core and POSIX pipes exist.

    One helper serves the process: every service built here shares it. The helper's module
    (subprocess, pipes) is imported only here, off the AWS backend's cold start.
    """
    global _shared_signer
    if settings.signing_helper == HELPER_OFF or os.name != "posix" or _usable_cpus() < 2:
        return InProcessSigner()
    with _signer_lock:
        if _shared_signer is None:
            from chalicelib.signing import SharedSigner

            _shared_signer = SharedSigner()
        return _shared_signer


def _build_aws_service(settings: Settings, boto_session: Any) -> CertificateService:
    """boto3 is imported here, on first use: the local backend never loads it.

    Clients honour boto3's own AWS_ENDPOINT_URL, so the same code runs against a moto server.
    """
    import boto3
    from botocore.config import Config

    from chalicelib.events import EventBridgePublisher
    from chalicelib.importer import AcmImporter
    from chalicelib.inventory import DynamoInventory
    from chalicelib.store import WRITERS, S3Store

    for name, value in (
        ("CERTIFICATE_BUCKET_NAME", settings.certificate_bucket_name),
        ("INVENTORY_TABLE_NAME", settings.inventory_table_name),
    ):
        if not value:
            raise ConfigurationError(f"{name} must be set for BACKEND=aws")
    session = boto_session or boto3.session.Session()
    return CertificateService(
        store=S3Store(
            session.client("s3", config=Config(max_pool_connections=WRITERS)),
            settings.certificate_bucket_name,
            settings.kms_key_id,
        ),
        inventory=DynamoInventory(
            session.client("dynamodb"),
            settings.inventory_table_name,
            settings.inventory_index_name,
        ),
        publisher=EventBridgePublisher(session.client("events"), settings.event_bus_name),
        importer=AcmImporter(session.client("acm")),
        ca_key_passphrase=settings.ca_key_passphrase,
    )

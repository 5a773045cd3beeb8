"""Builds the service from Settings, lazily, once per process; tests override or reset it.

Adapters are imported here and nowhere else in the product code. Building is deferred to the
first request so that boto3 clients (AWS backend) are created after moto starts in tests and no
backend work is done at import time (Lambda cold start).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chalicelib.adapters.local.events import InProcessPublisher
from chalicelib.adapters.local.importer import NullImporter
from chalicelib.adapters.local.inventory import SqliteInventory
from chalicelib.adapters.local.iot import NoIotRegistry
from chalicelib.adapters.local.maintenance import INVENTORY_FILE, LocalMaintenance
from chalicelib.adapters.local.store import LocalDirStore
from chalicelib.authority import REMOTE_REVOCATION_RECHECK
from chalicelib.config import (
    AWS_BACKEND,
    LOCAL_BACKEND,
    SYNC_FULL,
    ConfigurationError,
    Settings,
    load_settings,
)
from chalicelib.events import CertificateEvent
from chalicelib.issuance import HELD_KEY_THREADS, InProcessSigner
from chalicelib.ports.key_store import CaKeyStore
from chalicelib.ports.signer import DeviceSigner
from chalicelib.service import CertificateService

if TYPE_CHECKING:  # imported where a pool is made, off the AWS backend's cold start
    from chalicelib.adapters.local.expiry_scan import ExpiryScanner
    from chalicelib.adapters.local.pkcs11_keys import Pkcs11KeyStore
    from chalicelib.adapters.local.signing_pool import PoolSigner

_lock = threading.Lock()
_service: CertificateService | None = None
_pool_signers: dict[int, PoolSigner] = {}
_token_stores: dict[tuple[str, str, str], Pkcs11KeyStore] = {}
_scanner: ExpiryScanner | None = None
_signer_lock = threading.Lock()


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
    service: CertificateService

    def deliver(events: Sequence[CertificateEvent]) -> None:
        """Locally, events go straight to their handlers, in process."""
        service.record_events(events)

    service = CertificateService(
        store=LocalDirStore(settings.certstore_dir, durable=durable),
        inventory=SqliteInventory(settings.certstore_dir / INVENTORY_FILE, durable=durable),
        publisher=InProcessPublisher(deliver),
        importer=NullImporter(),
        iot_registry=NoIotRegistry(),
        ca_key_passphrase=settings.ca_key_passphrase,
        signer=_local_signer(settings),
        public_base_url=settings.public_base_url,
        key_stores=_local_key_stores(settings),
        default_key_store=settings.ca_key_store,
        purge_expired_after_days=settings.purge_expired_after_days,
    )
    return service


def _local_key_stores(settings: Settings) -> dict[str, CaKeyStore]:
    """The PKCS#11 token, where one is configured (one per process and token: its session is
    kept)."""
    if settings.pkcs11 is None:
        return {}
    from chalicelib.adapters.local.pkcs11_keys import Pkcs11KeyStore

    pkcs11 = settings.pkcs11
    with _signer_lock:
        key = (pkcs11.module, pkcs11.token, settings.ownership.stage)
        store = _token_stores.get(key)
        if store is None:
            store = _token_stores[key] = Pkcs11KeyStore(
                pkcs11.module, pkcs11.token, pkcs11.pin, settings.ownership.stage
            )
    return {store.name: store}


def local_maintenance(settings: Settings) -> LocalMaintenance:
    """`make fsck`'s access to the local store's files (chalicelib.fsck)."""
    return LocalMaintenance(settings.certstore_dir)


def _local_signer(settings: Settings) -> DeviceSigner:
    """Large bulks are signed by a process pool (one per process, whatever services are built
    here: a pool outlives the services of tests that reset the wiring). Its module is imported
    only here, off the AWS backend's cold start."""
    if settings.signing_processes < 1 or os.name != "posix":
        return InProcessSigner()
    with _signer_lock:
        signer = _pool_signers.get(settings.signing_processes)
        if signer is None:
            from chalicelib.adapters.local.signing_pool import PoolSigner

            signer = _pool_signers[settings.signing_processes] = PoolSigner(
                settings.signing_processes
            )
            atexit.register(signer.close)  # before the interpreter takes modules apart
        return signer


def start_expiry_scan() -> None:
    """In a `make run` worker: its expiry scanner (chalicelib.adapters.local.expiry_scan), where
    the settings ask for one (local backend, EXPIRY_SCAN_HOURS above 0)."""
    global _scanner
    settings = load_settings()
    if settings.backend != LOCAL_BACKEND or settings.expiry_scan_hours <= 0 or _scanner:
        return
    from chalicelib.adapters.local.expiry_scan import ExpiryScanner

    _scanner = ExpiryScanner(
        settings.certstore_dir, settings.expiry_scan_hours * 3600, scan_expiring
    )
    _scanner.start()


def scan_expiring() -> dict[str, int]:
    """The expiry scan, as configured (EXPIRY_NOTICE_DAYS, PURGE_EXPIRED_AFTER_DAYS): the
    scheduled function's on AWS, a server worker's locally; the notices sent and the expired
    certificates deleted, also logged as one line."""
    settings = load_settings()
    service = certificate_service()
    done = {"notices": service.notify_expiring(settings.expiry_notice_days)}
    if settings.purge_expired_after_days:
        done["deleted"] = service.purge_expired(settings.purge_expired_after_days)
    logging.getLogger("iot_cert_service.jobs").info(json.dumps({"job": "expiry-scan", **done}))
    return done


def stop_expiry_scan() -> None:
    global _scanner
    if _scanner is not None:
        _scanner.stop()
        _scanner = None


def close_signing_pools() -> None:
    """Stop the signing pools' processes: a server's worker calls it as it shuts down (a
    process that ends without running `atexit`, as a multiprocessing child does, would otherwise
    wait for them forever)."""
    with _signer_lock:
        pools = list(_pool_signers.values())
        _pool_signers.clear()
    for pool in pools:
        pool.close()


ADAPTIVE_RETRIES = {"mode": "adaptive", "max_attempts": 10}
"""AWS IoT's control plane and KMS's request quotas are the account's, shared by every stage:
botocore backs off, and slows its own rate, rather than fail a revocation's walk
(chalicelib.cascade), a bulk's registrations or a bulk's signatures under a KMS CA."""


def _build_aws_service(settings: Settings, boto_session: Any) -> CertificateService:
    """boto3 is imported here, on first use: the local backend never loads it.

    Clients honour boto3's own AWS_ENDPOINT_URL, so the same code runs against a moto server.
    """
    import boto3
    from botocore.config import Config

    from chalicelib.adapters.aws.events import EventBridgePublisher
    from chalicelib.adapters.aws.importer import AcmImporter
    from chalicelib.adapters.aws.inventory import DynamoInventory
    from chalicelib.adapters.aws.iot import AwsIotRegistry
    from chalicelib.adapters.aws.kms import KmsKeyStore
    from chalicelib.adapters.aws.store import WRITERS, S3Store

    for name, value in (
        ("CERTIFICATE_BUCKET_NAME", settings.certificate_bucket_name),
        ("INVENTORY_TABLE_NAME", settings.inventory_table_name),
        ("CA_SIGNER_ROLE_ARN", settings.ca_signer_role_arn),
    ):
        if not value:
            raise ConfigurationError(f"{name} must be set for BACKEND=aws")
    session = boto_session or boto3.session.Session()
    kms = KmsKeyStore(
        session.client(
            "kms", config=Config(retries=ADAPTIVE_RETRIES, max_pool_connections=HELD_KEY_THREADS)
        ),
        settings.ownership,
        settings.ca_signer_role_arn,
    )
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
            settings.inventory_expiry_index_name,
        ),
        publisher=EventBridgePublisher(session.client("events"), settings.event_bus_name),
        importer=AcmImporter(session.client("acm"), settings.ownership),
        ca_key_passphrase=settings.ca_key_passphrase,
        revocation_recheck=REMOTE_REVOCATION_RECHECK,
        public_base_url=settings.public_base_url,
        iot_registry=AwsIotRegistry(
            session.client("iot", config=Config(retries=ADAPTIVE_RETRIES)),
            settings.iot_device_policy_name,
            settings.iot_provisioning_role_arn,
            settings.ownership,
        ),
        iot_device_policy_name=settings.iot_device_policy_name,
        inventory_reads_store=False,  # the inventory function may not read documents
        key_stores={kms.name: kms},
        default_key_store=settings.ca_key_store,
        purge_expired_after_days=settings.purge_expired_after_days,
    )

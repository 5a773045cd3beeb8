"""Settings read from the environment.

Everything the service reads from the environment is read here, at call time, so tests and
`chalice local` stages can change it without reloading modules.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.ownership import DEFAULT_APP, LOCAL_STAGE, NAME_RULE, Ownership, is_valid_name
from chalicelib.ports.key_store import (
    FILE_KEY_STORE,
    KMS_KEY_STORE,
    PKCS11_KEY_STORE,
)

LOCAL_BACKEND = "local"
DEFAULT_CERTSTORE_DIR = "./.certstore"
AWS_BACKEND = "aws"
SYNC_NORMAL = "normal"
SYNC_FULL = "full"
AUTO = "auto"


class ConfigurationError(Exception):
    """The environment names a backend or switch this service does not know."""


@dataclass(frozen=True)
class Settings:
    backend: str
    certstore_dir: Path
    certstore_sync: str
    signing_processes: int
    """Local backend: processes that sign a large bulk, per server worker (0: in process)."""
    ca_key_passphrase: bytes | None
    certificate_bucket_name: str
    inventory_table_name: str
    inventory_index_name: str
    event_bus_name: str
    kms_key_id: str | None
    api_token: str | None
    ownership: Ownership
    """The app and stage (`SERVICE_APP`, `SERVICE_STAGE`, which Terraform sets from `app_name`
    and `stage`) that every resource the service creates in AWS carries."""
    iot_device_policy_name: str = ""
    """The stack's AWS IoT policy for devices (attached at registration and by JITP)."""
    iot_provisioning_role_arn: str = ""
    """The role AWS IoT assumes to provision devices just in time."""
    inventory_expiry_index_name: str = "expiry-index"
    """aws: the inventory's sparse index of active items by NotAfter."""
    expiry_scan_hours: float = 24
    """`make run`: how often the expiry scan runs (`EXPIRY_SCAN_HOURS`; 0: never); at start too."""
    expiry_notice_days: int = 30
    """The expiry scan's window (`EXPIRY_NOTICE_DAYS`): an `expiring` event a day for each
    active certificate whose end is within it."""
    purge_expired_after_days: int = 0
    """The expiry scan also deletes each device certificate, never revoked, expired longer than this
    many days (`PURGE_EXPIRED_AFTER_DAYS`; 0, the default: never), as Vault's tidy does."""
    ca_key_store: str = FILE_KEY_STORE
    """Where a new CA's key is kept unless its request says (`CA_KEY_STORE`): `file` locally
    and `kms` on AWS by default (chalicelib.ports.key_store)."""
    pkcs11: Pkcs11Settings | None = None
    """Local backend: the PKCS#11 token CA keys may be kept in, when `PKCS11_MODULE` is set."""
    ca_signer_role_arn: str = ""
    """AWS backend: the role that alone may sign with the stage's KMS CA keys (the API's)."""
    public_base_url: str | None = None
    """Where `/certificates/{ca}/crl` is published: issued certificates then name their issuer's
    CRL there (CRL Distribution Point)."""


@dataclass(frozen=True)
class Pkcs11Settings:
    module: str  # PKCS11_MODULE: the module's shared library
    token: str  # PKCS11_TOKEN: the token's label
    pin: str = field(repr=False)  # PKCS11_PIN: the user PIN


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower() or default
    if value not in allowed:
        raise ConfigurationError(f"{name}={value!r}: must be one of {', '.join(allowed)}")
    return value


def load_settings() -> Settings:
    passphrase = os.environ.get("CA_KEY_PASSPHRASE", "")
    backend = _choice("BACKEND", LOCAL_BACKEND, (LOCAL_BACKEND, AWS_BACKEND))
    pkcs11 = _pkcs11() if backend == LOCAL_BACKEND else None
    return Settings(
        backend=backend,
        ca_key_store=_ca_key_store(backend, pkcs11),
        pkcs11=pkcs11,
        ca_signer_role_arn=os.environ.get("CA_SIGNER_ROLE_ARN", "").strip(),
        expiry_scan_hours=_hours("EXPIRY_SCAN_HOURS", "24"),
        expiry_notice_days=_whole_number("EXPIRY_NOTICE_DAYS", "30"),
        purge_expired_after_days=_whole_number("PURGE_EXPIRED_AFTER_DAYS", "0"),
        certstore_dir=Path(os.environ.get("CERTSTORE_DIR", DEFAULT_CERTSTORE_DIR)),
        certstore_sync=_choice("CERTSTORE_SYNC", SYNC_NORMAL, (SYNC_NORMAL, SYNC_FULL)),
        signing_processes=_signing_processes(),
        ca_key_passphrase=passphrase.encode() if passphrase else None,
        certificate_bucket_name=os.environ.get("CERTIFICATE_BUCKET_NAME", ""),
        inventory_table_name=os.environ.get("INVENTORY_TABLE_NAME", ""),
        inventory_index_name=os.environ.get("INVENTORY_INDEX_NAME", "parent-index"),
        inventory_expiry_index_name=os.environ.get("INVENTORY_EXPIRY_INDEX_NAME", "expiry-index"),
        event_bus_name=os.environ.get("EVENT_BUS_NAME", "default"),
        kms_key_id=os.environ.get("KMS_KEY_ID") or None,
        api_token=api_token(),
        public_base_url=_public_base_url(),
        iot_device_policy_name=os.environ.get("IOT_DEVICE_POLICY_NAME", ""),
        iot_provisioning_role_arn=os.environ.get("IOT_PROVISIONING_ROLE_ARN", ""),
        ownership=Ownership(_name("SERVICE_APP", DEFAULT_APP), _name("SERVICE_STAGE", LOCAL_STAGE)),
    )


def _pkcs11() -> Pkcs11Settings | None:
    module = os.environ.get("PKCS11_MODULE", "").strip()
    if not module:
        return None
    token = os.environ.get("PKCS11_TOKEN", "").strip()
    pin = os.environ.get("PKCS11_PIN", "")
    if not token or not pin:
        raise ConfigurationError("PKCS11_MODULE is set: PKCS11_TOKEN and PKCS11_PIN must be too")
    return Pkcs11Settings(module, token, pin)


def key_stores_of(backend: str, pkcs11: Pkcs11Settings | None) -> tuple[str, ...]:
    """The key stores a deployment offers: `file` always; `kms` on AWS; `pkcs11` locally
    once a module is configured."""
    if backend == AWS_BACKEND:
        return (FILE_KEY_STORE, KMS_KEY_STORE)
    return (FILE_KEY_STORE, PKCS11_KEY_STORE) if pkcs11 is not None else (FILE_KEY_STORE,)


def _ca_key_store(backend: str, pkcs11: Pkcs11Settings | None) -> str:
    default = KMS_KEY_STORE if backend == AWS_BACKEND else FILE_KEY_STORE
    return _choice("CA_KEY_STORE", default, key_stores_of(backend, pkcs11))


def _name(variable: str, default: str) -> str:
    """An app or stage name, as Terraform checks it: it becomes tag values and thing attributes."""
    value = os.environ.get(variable, "").strip() or default
    if not is_valid_name(value):
        raise ConfigurationError(f"{variable}={value!r}: {NAME_RULE}")
    return value


def _public_base_url() -> str | None:
    value = os.environ.get("PUBLIC_BASE_URL", "").strip()
    if not value:
        return None
    if not value.startswith(("https://", "http://")) or any(c in value for c in "?# "):
        raise ConfigurationError(
            f"PUBLIC_BASE_URL={value!r}: must be an http(s) URL without query or fragment"
        )
    return value.rstrip("/")


def usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _whole_number(name: str, default: str) -> int:
    value = os.environ.get(name, default).strip() or default
    if not value.isdigit():
        raise ConfigurationError(f"{name}={value!r}: must be a whole number")
    return int(value)


def _hours(name: str, default: str) -> float:
    value = os.environ.get(name, default).strip() or default
    try:
        hours = float(value)
    except ValueError:
        hours = -1.0
    if not 0 <= hours <= 24 * 365:
        raise ConfigurationError(f"{name}={value!r}: must be a number of hours from 0 to 8760")
    return hours


def server_workers() -> int:
    """`WORKERS`: the local server's worker processes, one per usable CPU by default."""
    workers = _whole_number("WORKERS", str(usable_cpus()))
    if workers < 1:
        raise ConfigurationError(f"WORKERS={workers}: must be at least 1")
    return workers


def _signing_processes() -> int:
    """`SIGNING_PROCESSES`: a number, or `auto`: this worker's share of the usable CPUs
    (`WORKERS` server workers share them), at least one where there are two CPUs or more."""
    if os.environ.get("SIGNING_PROCESSES", AUTO).strip().lower() not in (AUTO, ""):
        return _whole_number("SIGNING_PROCESSES", AUTO)
    cpus = usable_cpus()
    if cpus < 2:
        return 0
    return max(1, cpus // max(1, _whole_number("WORKERS", "1")))


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def allowed_hosts() -> frozenset[str]:
    """The host names `make run`'s server answers to (the Host header, without its port): the
    loopback names, and those `ALLOWED_HOSTS` adds (comma-separated, e.g. `ca.lab.internal`);
    the address a connection arrived at is added per request. Any other Host is refused, so a
    web page cannot reach the server under a name of its own (DNS rebinding)."""
    added = os.environ.get("ALLOWED_HOSTS", "")
    names = {name.strip().lower().strip("[]") for name in added.split(",") if name.strip()}
    return frozenset({*LOCAL_HOSTS, *names})


def api_token() -> str | None:
    """`API_TOKEN`, read on every request (the one setting the request path needs)."""
    return os.environ.get("API_TOKEN") or None


@dataclass(frozen=True)
class PortalSettings:
    """The Cognito sign-in of the browser portal on AWS; all empty where it is not deployed
    (Terraform sets these only with `portal = true`)."""

    cognito_region: str
    cognito_user_pool_id: str
    cognito_client_id: str
    cognito_identity_pool_id: str


def portal_settings() -> PortalSettings:
    return PortalSettings(
        cognito_region=os.environ.get("PORTAL_COGNITO_REGION", "").strip(),
        cognito_user_pool_id=os.environ.get("PORTAL_USER_POOL_ID", "").strip(),
        cognito_client_id=os.environ.get("PORTAL_USER_POOL_CLIENT_ID", "").strip(),
        cognito_identity_pool_id=os.environ.get("PORTAL_IDENTITY_POOL_ID", "").strip(),
    )

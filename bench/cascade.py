"""`make bench`'s figure of a CA revocation carried to AWS IoT: a cell of 10,000 registered
devices, against the cascade function's timeout.

The walk is the service's own (chalicelib.cascade.RevocationCascade) over the local backend in a
scratch directory, and a registry that answers at once but advances a modelled clock by what
each AWS IoT call would take: its latency, or, where the account's request rate is the bound,
the time that rate allows per call. The walk stops when the modelled clock says its invocation's
time is up, as the handler stops on the Lambda context, and the next invocation goes on from its
cursor. Measured: how many invocations the cell takes, the longest one (against the timeout),
and the CPU the walk itself costs per device (against the modelled time per device).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from bench.figures import FULL, Row, Scale, scratch
from bench.limits import environment
from bench.servers import PROJECT_ROOT

CALL_LATENCY_SECONDS = 0.05
"""A control-plane call from Lambda in the same region, as modelled (not measured here)."""
UPDATE_RATE_PER_SECOND = 10.0
"""UpdateCertificate requests per second the account is assumed to allow (AWS IoT throttles its
control plane per account; the real figure is in the account's Service Quotas)."""
CASCADE_MARGIN_SECONDS = 20.0  # app.py's CASCADE_MARGIN_MS
PAGE = 250  # ListCertificatesByCA's largest page, as the AWS adapter asks for


def cascade_timeout() -> int:
    stage = json.loads((PROJECT_ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]
    return int(stage["lambda_functions"]["revocation_cascade"]["lambda_timeout"])


@dataclass
class ModelledRegistry:
    """AWS IoT's registry as the cascade sees it (the IotRegistry calls it makes), each call
    charged to `now`."""

    issuers: dict[str, str] = field(default_factory=dict)  # certificate ID -> its CA's ID
    statuses: dict[str, str] = field(default_factory=dict)
    now: float = 0.0
    available = True

    def certificates_of_ca(self, ca_id: str, marker: str | None) -> tuple[list[object], str | None]:
        from chalicelib.ports.iot_registry import RegisteredCertificate

        self.now += CALL_LATENCY_SECONDS
        below = [identifier for identifier, issuer in self.issuers.items() if issuer == ca_id]
        start = int(marker or 0)
        page = [RegisteredCertificate(i, self.statuses[i]) for i in below[start : start + PAGE]]
        return page, str(start + PAGE) if start + PAGE < len(below) else None

    def revoke_certificate(self, certificate_id: str) -> bool:
        self.now += max(CALL_LATENCY_SECONDS, 1 / UPDATE_RATE_PER_SECOND)
        self.statuses[certificate_id] = "REVOKED"
        return True

    def deactivate_ca(self, certificate_id: str) -> bool:
        self.now += CALL_LATENCY_SECONDS
        return True


def walk(devices: int) -> tuple[int, float, float, float]:
    """(invocations, longest invocation s, modelled total s, CPU s per device)."""
    from chalicelib import wiring
    from chalicelib.cascade import Cursor, RevocationCascade
    from chalicelib.config import load_settings
    from chalicelib.model import CertType, IssueRequest

    with scratch() as directory, environment(CERTSTORE_DIR=str(directory), BACKEND="local"):
        service = wiring.build_service(load_settings())
        service.create_root(IssueRequest(CertType.ROOT, fqdn="bench.example"))
        cell = service.create_intermediate(
            IssueRequest(CertType.INTERMEDIATE, fqdn="cell.bench.example")
        ).record
        registry = ModelledRegistry()
        for number in range(devices):
            registry.issuers[f"{number:064x}"] = cell.fingerprint_sha256
            registry.statuses[f"{number:064x}"] = "ACTIVE"
        cascade = RevocationCascade(service.store, service.inventory, registry)  # type: ignore[arg-type]
        budget = cascade_timeout() - CASCADE_MARGIN_SECONDS
        cursor: Cursor | None = cascade.start(cell.fqdn)
        invocations, longest = 0, 0.0
        started_cpu = time.process_time()
        while cursor is not None:
            invocations += 1
            began = registry.now
            cursor = cascade.run(cursor, lambda began=began: registry.now - began >= budget)
            longest = max(longest, registry.now - began)
        cpu_per_device = (time.process_time() - started_cpu) / devices
    if set(registry.statuses.values()) != {"REVOKED"}:
        raise RuntimeError("the walk left a device unrevoked")
    return invocations, longest, registry.now, cpu_per_device


def cascade_rows(scale: Scale = FULL) -> list[Row]:
    devices = scale.cascade_devices
    timeout = cascade_timeout()
    invocations, longest, total, cpu = walk(devices)
    per_device = max(CALL_LATENCY_SECONDS, 1 / UPDATE_RATE_PER_SECOND)
    return [
        Row(f"CA revocation to AWS IoT, {devices:,} devices at a modelled {per_device * 1000:.0f}"
            f" ms each: {invocations} invocations, {total / 60:.0f} min in all; the longest",
            f"{longest:.0f} s", f"{timeout} s timeout", longest / timeout, "<= 1.00",
            longest <= timeout),
        Row("the walk's own CPU per device (in process)", f"{cpu * 1e6:.0f} us",
            f"{per_device * 1000:.0f} ms modelled per device", cpu / per_device, "<= 0.10",
            cpu / per_device <= 0.1),
    ]  # fmt: skip

"""`make bench`'s tail figures against the API function's timeout: the slowest accepted bulk of
each RSA key type over enough samples to state a p99, and a bulk registered with AWS IoT.

RSA key generation draws random primes, so its time varies widely from one bulk to the next: a
mean says little about the request a caller sees cut at 28 s. Each RSA type's largest accepted
bulk is issued `tail_samples` times in process, as the Lambda signs it (no pool), through the
Chalice app; the p99 is the nearest-rank one (of 20 samples, the slowest), its CPU time scaled to
the function's CPU share, against half the timeout. The samples run in two processes at once,
each timing its own CPU.

The AWS IoT bulk is the largest one a request may register (`MAX_AWS_IOT_BULK` devices with their
things) on the AWS backend under moto: its CPU time is measured, its AWS IoT calls are counted,
and each call is charged a modelled latency, or, where the account's request rate is the bound,
the time that rate allows per call (these rates are shared by every stage in the account).
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ProcessPoolExecutor

from bench.figures import FULL, Row, Scale
from bench.limits import (
    LAMBDA_FULL_VCPU_MB,
    _lambda_settings,
    _post,
    counted_calls,
    local_app,
    moto_account,
)
from bench.servers import DEVICE_PARENT

IOT_CALL_LATENCY_SECONDS = 0.05
"""A control-plane call from Lambda in the same region, as modelled (not measured here)."""
IOT_RATE_PER_SECOND = {"RegisterCertificate": 10.0, "CreateThing": 15.0}
"""Requests per second assumed for the account (AWS IoT throttles its control plane per account
and per operation; the account's own figures are in its Service Quotas). Other calls are charged
their latency only."""


def nearest_rank(samples: list[float], percentile: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]


def _bulk_cpu_seconds(key_type: str, count: int, samples: int) -> list[float]:
    """`samples` bulks of `count` devices with `key_type` keys: the CPU seconds of each."""
    seconds = []
    with local_app() as client:
        body = {"parent_fqdn": DEVICE_PARENT, "count": count, "key_type": key_type}
        for _ in range(samples):
            started = time.process_time()
            _post(client, "/certificates/device", body)
            seconds.append(time.process_time() - started)
    return seconds


def bulk_tail_rows(scale: Scale = FULL) -> list[Row]:
    from chalicelib.api.fields import MAX_BULK_BY_KEY_TYPE

    memory_mb, timeout_s = _lambda_settings()
    share = memory_mb / LAMBDA_FULL_VCPU_MB
    rows = []
    with ProcessPoolExecutor(2) as pool:
        for key_type, largest in MAX_BULK_BY_KEY_TYPE.items():
            count = largest if scale.largest_bulks else 1
            halves = [scale.tail_samples // 2, scale.tail_samples - scale.tail_samples // 2]
            parts = [pool.submit(_bulk_cpu_seconds, key_type, count, n) for n in halves]
            samples = [seconds for part in parts for seconds in part.result()]
            p99 = nearest_rank(samples, 99) / share
            median = nearest_rank(samples, 50) / share
            rows.append(Row(
                f"{key_type} x {count}, p99 of {len(samples)} bulks in process at {memory_mb} MB "
                f"({share:.2f} vCPU; median {median:.1f} s)",
                f"{p99:.1f} s", f"{timeout_s} s timeout", p99 / timeout_s, "<= 0.50",
                p99 / timeout_s <= 0.5,
            ))  # fmt: skip
    return rows


def aws_iot_bulk_rows(scale: Scale = FULL) -> list[Row]:
    """The largest AWS IoT bulk on the AWS backend under moto: calls counted, time modelled."""
    from chalice.test import Client

    from chalicelib import wiring
    from chalicelib.api.fields import MAX_AWS_IOT_BULK
    from chalicelib.config import load_settings

    count = MAX_AWS_IOT_BULK if scale.largest_bulks else 2
    with moto_account() as (session, _):
        calls = counted_calls(session, "iot")
        wiring.override_service(wiring.build_service(load_settings(), boto_session=session))
        from app import app

        with Client(app, stage_name="test") as client:
            _post(client, "/certificates/root", {"fqdn": "bench.example"})
            _post(client, "/certificates/intermediate", {"fqdn": DEVICE_PARENT})
            client.http.post(
                f"/certificates/{DEVICE_PARENT}/aws-iot/register",
                headers={"Content-Type": "application/json"},
                body="{}",
            )
            calls.clear()  # the bulk's alone
            body = {"parent_fqdn": DEVICE_PARENT, "count": count,
                    "aws_iot": {"register": True, "thing": True}}  # fmt: skip
            started = time.process_time()
            answer = json.loads(_post(client, "/certificates/device", body).body)
            cpu = time.process_time() - started
            failed = [item for item in answer["items"] if item["aws_iot"]["error"]]
            if failed:
                raise RuntimeError(f"AWS IoT registration failed: {failed[0]['aws_iot']}")
        wiring.reset()
    memory_mb, timeout_s = _lambda_settings()
    share = memory_mb / LAMBDA_FULL_VCPU_MB
    waiting = sum(
        number * max(IOT_CALL_LATENCY_SECONDS, 1 / IOT_RATE_PER_SECOND.get(name, math.inf))
        for name, number in calls.items()
    )
    modelled = cpu / share + waiting
    shown = ", ".join(f"{number} {name}" for name, number in sorted(calls.items()))
    return [Row(
        f"AWS IoT bulk of {count} devices with things, modelled at {memory_mb} MB ({shown}; "
        f"{IOT_CALL_LATENCY_SECONDS * 1000:.0f} ms a call, the account's rates as assumed in "
        f"bench/tails.py)",
        f"{modelled:.1f} s", f"{timeout_s} s timeout", modelled / timeout_s, "<= 0.50",
        modelled / timeout_s <= 0.5,
    )]  # fmt: skip

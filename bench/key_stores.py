"""`make bench`'s figures of CAs whose keys a key store holds.

- PKCS#11 (a SoftHSM2 token in a scratch directory): device issuance in process, through the
  service, under a cell whose key is in the token, as a ratio to a cell whose key is a file, in
  the same run, rounds interleaved.
- AWS KMS (under moto): the KMS calls a device issuance and the largest accepted bulk make, and
  that bulk's time at the Lambda's CPU share with each `Sign` charged the time the account's
  signing rate allows it (KMS's quotas are the account's, shared by every stage).
"""

from __future__ import annotations

import statistics
import time

from bench.figures import FULL, Row, Scale, per_second, rate, scratch
from bench.limits import (
    LAMBDA_FULL_VCPU_MB,
    _lambda_settings,
    counted_calls,
    environment,
    moto_account,
)
from bench.servers import DEVICE_PARENT

KMS_SIGN_RATE_PER_SECOND = 100.0
"""`Sign` calls per second a stage is assumed to get: a third of the ECC signing quota AWS
documents per account and region (300 a second; RSA: 500), as if three stages signed bulks at
once. The account's own figure is in its Service Quotas."""
KMS_SIGN_LATENCY_SECONDS = 0.025
"""One `Sign` call from Lambda in the same region, as modelled (not measured here); the bulk's
threads (chalicelib.issuance.HELD_KEY_THREADS) overlap these waits."""
FILE_CELL, HELD_CELL = f"file.{DEVICE_PARENT}", f"hsm.{DEVICE_PARENT}"


def key_store_rows(scale: Scale = FULL) -> list[Row]:
    return pkcs11_rows(scale) + kms_rows(scale)


def pkcs11_rows(scale: Scale = FULL) -> list[Row]:
    from chalicelib import wiring
    from chalicelib.model import CertType, IssueRequest
    from devtools.softhsm import ensure_token, softhsm_module

    figure = "device issuance in process under a PKCS#11 (SoftHSM2) CA vs a file-key CA"
    if softhsm_module() is None:
        return [Row(figure, "SKIPPED: SoftHSM2 is not installed (make hsm-tools)")]
    with scratch() as directory:
        token = ensure_token(directory / "softhsm")
        store = str(directory / "certstore")
        with environment(**token.environment(), CERTSTORE_DIR=store, BACKEND="local",
                         SIGNING_PROCESSES="0"):  # fmt: skip
            wiring.reset()
            service = wiring.certificate_service()
            service.create_root(IssueRequest(CertType.ROOT, fqdn="bench.example"))
            for fqdn, key_store in ((FILE_CELL, "file"), (HELD_CELL, "pkcs11")):
                service.create_intermediate(
                    IssueRequest(CertType.INTERMEDIATE, fqdn=fqdn, key_store=key_store)
                )
            rates: dict[str, list[float]] = {FILE_CELL: [], HELD_CELL: []}
            count = 400 if scale.largest_bulks else 5
            for round_number in range(scale.bulk_rounds):
                cells = [FILE_CELL, HELD_CELL][:: 1 if round_number % 2 == 0 else -1]
                for cell in cells:
                    request = IssueRequest(CertType.CLIENT, parent_fqdn=cell)
                    rates[cell].append(rate(lambda r=request: service.create_device(r), count))
            wiring.reset()
    held, file = (statistics.median(rates[cell]) for cell in (HELD_CELL, FILE_CELL))
    return [Row(figure, per_second(held), per_second(file), held / file, ">= 0.50",
                held / file >= 0.5)]  # fmt: skip


def kms_rows(scale: Scale = FULL) -> list[Row]:
    """Calls counted under moto, where the CAs' keys are in KMS (the AWS default)."""
    from chalicelib import wiring
    from chalicelib.adapters.aws.kms import MAX_BULK_UNDER_KMS
    from chalicelib.config import load_settings
    from chalicelib.issuance import HELD_KEY_THREADS
    from chalicelib.model import CertType, IssueRequest

    count = MAX_BULK_UNDER_KMS if scale.largest_bulks else 3
    with moto_account() as (session, _):
        calls = counted_calls(session, "kms")
        service = wiring.build_service(load_settings(), boto_session=session)
        service.create_root(IssueRequest(CertType.ROOT, fqdn="bench.example"))
        service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=DEVICE_PARENT))
        single = IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT)
        service.create_device(single)  # warm: the CA's key is looked up once a process
        calls.clear()
        service.create_device(single)
        per_device = dict(calls)
        calls.clear()
        started = time.process_time()
        service.create_devices(
            IssueRequest(CertType.CLIENT, parent_fqdn=DEVICE_PARENT, count=count)
        )
        cpu = time.process_time() - started  # moto's signing included: an overestimate
        per_bulk = dict(calls)
    memory_mb, timeout_s = _lambda_settings()
    share = memory_mb / LAMBDA_FULL_VCPU_MB
    signs = per_bulk.get("Sign", 0)
    waiting = signs * max(KMS_SIGN_LATENCY_SECONDS / HELD_KEY_THREADS, 1 / KMS_SIGN_RATE_PER_SECOND)
    modelled = cpu / share + waiting

    def shown(counted: dict[str, int]) -> str:
        return ", ".join(f"{number} {name}" for name, number in sorted(counted.items()))

    return [
        Row("KMS calls per device issuance under a KMS CA (warm, moto)", shown(per_device),
            target="<= 1 Sign", met=per_device == {"Sign": 1}),
        Row(f"KMS calls per bulk of {count} under a KMS CA (moto)", shown(per_bulk),
            target=f"<= {count} Sign", met=per_bulk == {"Sign": count}),
        Row(f"bulk of {count} under a KMS CA, modelled at {memory_mb} MB ({share:.2f} vCPU; "
            f"{signs} Sign at the {KMS_SIGN_RATE_PER_SECOND:.0f}/s assumed in "
            "bench/key_stores.py)", f"{modelled:.1f} s", f"{timeout_s} s timeout",
            modelled / timeout_s, "<= 0.50", modelled / timeout_s <= 0.5),
    ]  # fmt: skip

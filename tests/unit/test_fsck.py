"""`make fsck` (chalicelib.fsck) on a local store: the named temporary files that interrupted
writes leave behind are reported, then removed by --repair; certificates stay."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib import fsck, wiring
from chalicelib.adapters.local.pkcs11_keys import Pkcs11KeyStore
from chalicelib.config import load_settings
from chalicelib.errors import CorruptDocument
from chalicelib.held_keys import held_key_id
from chalicelib.model import CertType, IssueRequest, KeyType, RenewRequest
from devtools.softhsm import Token


def test_reports_then_removes_named_temp_files_and_keeps_certificates(
    certstore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = wiring.certificate_service().create_root(IssueRequest(CertType.ROOT, fqdn="example.com"))
    wiring.reset()  # fsck builds its own, as `make fsck` would
    orphans = [certstore / "certificates" / ".tmp-0123456789ab-0", certstore / ".tmp-probe-1"]
    an_hour_ago = time.time() - 3600
    for orphan in orphans:
        orphan.write_text('{"fqdn": "half-writ')
        os.utime(orphan, (an_hour_ago, an_hour_ago))
    in_progress = certstore / "certificates" / ".tmp-0123456789ab-1"  # a write going on now
    in_progress.write_text('{"fqdn": "being wri')

    assert fsck.main([]) == 1
    report = capsys.readouterr().out
    assert [line for line in report.splitlines() if line.startswith("orphan")] == [
        f"orphan temporary file: {orphan}" for orphan in sorted(orphans)
    ]

    assert str(in_progress) not in report

    assert fsck.main(["--repair"]) == 0
    capsys.readouterr()
    assert not any(orphan.exists() for orphan in orphans)
    assert in_progress.exists()
    assert fsck.main([]) == 0
    assert capsys.readouterr().out.strip() == "fsck: clean"
    kept = wiring.certificate_service().get_certificate("example.com")  # still served as it was
    assert kept.record.serial == root.record.serial
    assert kept.revocation is None


# Corrupt documents and databases --------------------------------------------------------------


def _pki(certstore: Path) -> dict[str, str]:
    """A root, a cell and a device on the local backend at `certstore` (through the service)."""
    service = wiring.certificate_service()
    service.create_root(IssueRequest(CertType.ROOT, fqdn="example.com"))
    service.create_intermediate(IssueRequest(CertType.INTERMEDIATE, fqdn=CELL))
    device = service.create_device(IssueRequest(CertType.CLIENT, parent_fqdn=CELL))
    wiring.reset()  # fsck builds its own, as `make fsck` would
    return {"device": device.record.fqdn, "serial": device.record.serial}


CELL = "cell1.example.com"
CORRUPTIONS = {
    "empty": b"",
    "truncated": b'{"fqdn": "0b6c1c0e-5c55-4a8f-9f1b-7a4c5f2e1d3a.cell1.examp',
    "garbage": bytes(range(256)),
    "not an object": b"[1, 2, 3]",
    "missing fields": b'{"fqdn": "x.cell1.example.com"}',
}


@pytest.mark.parametrize("content", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_certificate_document_is_named_and_stays_a_problem(
    certstore: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    made = _pki(certstore)
    document = certstore / "certificates" / f"{made['device']}.json"
    document.write_bytes(content)

    assert fsck.main([]) == 1
    report = capsys.readouterr()
    assert f"corrupt document certificates/{made['device']}.json: " in report.out
    assert "Traceback" not in report.out + report.err
    assert fsck.main(["--repair"]) == 1  # nothing can rebuild a certificate
    assert "1 left" in capsys.readouterr().out
    assert document.read_bytes() == content  # nor is it removed


@pytest.mark.parametrize("content", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_revocation_is_rewritten_as_a_revocation_of_every_generation(
    certstore: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    made = _pki(certstore)
    service = wiring.certificate_service()
    service.renew(made["device"], RenewRequest())
    service.revoke(made["device"], "keyCompromise")
    wiring.reset()
    document = certstore / "revocations" / CELL / f"{made['device']}.json"
    document.write_bytes(content)
    with pytest.raises(CorruptDocument, match=str(document.relative_to(certstore))):
        wiring.certificate_service().certificate_revocation_list(CELL)  # what the CRL route met
    wiring.reset()

    assert fsck.main([]) == 1
    assert f"corrupt document revocations/{CELL}/{made['device']}.json" in capsys.readouterr().out
    assert fsck.main(["--repair"]) == 0
    assert "(repaired)" in capsys.readouterr().out
    assert fsck.main([]) == 0

    service = wiring.certificate_service()
    listed = {entry.serial_number for entry in service.certificate_revocation_list(CELL)}
    generations = service.store.list_generations(made["device"])
    assert {int(record.serial, 16) for record in generations} <= listed
    assert service.get_certificate(made["device"]).revocation is not None
    assert list((certstore / ".corrupt").iterdir())  # the corrupt one is kept aside


def test_a_garbage_inventory_database_is_named_then_rebuilt(
    certstore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _pki(certstore)
    database = certstore / "inventory.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    database.write_bytes(b"this is not a database" * 100)

    assert fsck.main([]) == 1
    report = capsys.readouterr()
    assert f"corrupt inventory database {database}: " in report.out
    assert "Traceback" not in report.out + report.err
    assert fsck.main(["--repair"]) == 0
    capsys.readouterr()
    assert fsck.main([]) == 0

    service = wiring.certificate_service()
    listed = service.list_certificates(CELL, 10, None)
    assert [item.fqdn for item in listed.items] == [made["device"]]


def test_a_generation_a_crashed_renewal_left_unrevoked_is_found_and_covered(
    certstore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A renewal stopped between its write and its look, after the revocation's own look."""
    made = _pki(certstore)
    service = wiring.certificate_service()
    service.revoke(made["device"], "keyCompromise")
    current = service.store.get_certificate(made["device"])
    late = replace(current, serial="1234abcd", generation=2)  # as if stored then, unlooked at
    service.store.put_certificate(late)
    wiring.reset()

    assert fsck.main([]) == 1
    assert f"revoked certificate {made['device']} has an unrevoked generation 1234abcd" in (
        capsys.readouterr().out
    )
    assert fsck.main(["--repair"]) == 0
    service = wiring.certificate_service()
    assert 0x1234ABCD in {
        entry.serial_number for entry in service.certificate_revocation_list(CELL)
    }


def test_a_certificate_whose_ca_was_deleted_is_named_until_it_is_deleted(
    certstore: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issued in the instant its CA was deleted (on AWS, with its event late): the deletion's
    look at the CA's children missed it. Revoked with its CA, it is deleted by name."""
    made = _pki(certstore)
    service = wiring.certificate_service()
    service.revoke(CELL, "cessationOfOperation")
    service.inventory.remove_item(made["device"], CELL)  # as if its item had not come yet
    assert service.delete(CELL, cascade=True).deleted == 1
    wiring.reset()

    assert fsck.main([]) == 1
    expected = f"certificate {made['device']} was issued by CA {CELL}, which was deleted"
    assert expected in capsys.readouterr().out
    service = wiring.certificate_service()
    assert service.delete(made["device"]).deleted == 1  # revoked with its CA: deleted by name
    wiring.reset()
    assert fsck.main([]) == 0


# CA keys in a PKCS#11 token -------------------------------------------------------------------


def test_a_ca_key_missing_from_its_token_and_a_key_of_no_ca_are_named(
    certstore: Path,
    softhsm_token: Token,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The token is shared by the test process: this store's stage is its own (its keys are
    labelled `fsck/...`), as a token serves one store."""
    for name, value in {**softhsm_token.environment(), "SERVICE_STAGE": "fsck"}.items():
        monkeypatch.setenv(name, value)
    wiring.reset()
    service = wiring.certificate_service()
    held = IssueRequest(CertType.ROOT, fqdn="hsm.example.com", key_store="pkcs11")
    root = service.create_root(held)
    service.create_root(replace(held, fqdn="lost.example.com"))
    service.create_root(IssueRequest(CertType.ROOT, fqdn="file.example.com"))
    wiring.reset()
    assert fsck.main([]) == 0
    assert capsys.readouterr().out.strip() == "fsck: clean"

    settings = load_settings()
    assert settings.pkcs11 is not None
    token = Pkcs11KeyStore(
        settings.pkcs11.module, settings.pkcs11.token, settings.pkcs11.pin, "fsck"
    )
    lost = wiring.certificate_service().get_certificate("lost.example.com").record.key_id
    assert lost is not None and lost != root.record.key_id
    token.discard_key(lost)
    stray = token.create_key("never-stored.example.com", KeyType.EC_P256)
    wiring.reset()

    assert fsck.main(["--repair"]) == 1
    report = capsys.readouterr().out.splitlines()
    assert f"CA lost.example.com: PKCS#11 key {lost} cannot be read" in "\n".join(report)
    assert f"key {held_key_id(stray)} in pkcs11 is no CA's" in report
    assert report[-1] == "fsck: 2 problem(s) found, 0 repaired, 2 left"
    assert token.key_ids() == {root.record.key_id, held_key_id(stray)}  # nothing destroyed

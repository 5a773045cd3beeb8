"""CA keys held by a key store, over the in-memory fake (tests.fakes.InMemoryKeyStore): what
the service signs goes through the store, the key is in no record, and a key whose CA was not
stored is taken out of the store again."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib import pki
from chalicelib.errors import AlreadyExists, CaRevoked, Concept, InvalidRequest, StorageError
from chalicelib.held_keys import KeyNeverLeavesItsStore, held_key, held_key_id, is_held
from chalicelib.model import CertificateRecord, CertType, IssueRequest, KeyType, RenewRequest
from chalicelib.pki_documents import build_crl
from tests.fakes import InMemoryKeyStore, InMemoryStore, make_service

ROOT, CELL = "example.com", "cell1.example.com"


def root_request(fqdn: str = ROOT, key_type: KeyType = KeyType.EC_P256) -> IssueRequest:
    return IssueRequest(CertType.ROOT, fqdn=fqdn, key_type=key_type, key_store="pkcs11")


def cell_request(key_type: KeyType = KeyType.EC_P256) -> IssueRequest:
    return IssueRequest(
        CertType.INTERMEDIATE, fqdn=CELL, parent_fqdn=ROOT, key_type=key_type, key_store="pkcs11"
    )


def test_a_held_key_signs_through_its_store_and_gives_nothing_else() -> None:
    inner = ec.generate_private_key(ec.SECP384R1())
    calls: list[str] = []

    def sign_with(data: bytes, algorithm: object) -> bytes:
        calls.append(type(algorithm).__name__)
        return inner.sign(data, ec.ECDSA(algorithm))  # type: ignore[arg-type]

    key = held_key(inner.public_key(), sign_with, "key-1")
    assert is_held(key) and held_key_id(key) == "key-1" and held_key_id(inner) is None
    certificate = pki.sign_certificate(
        pki.root_profile(), pki.build_subject(ROOT, pki.SubjectDetails()), inner.public_key(),
        _validity(), None, self_signing_key=key,
    )  # fmt: skip
    certificate.verify_directly_issued_by(certificate)
    assert calls == ["SHA384"]  # P-384 signs with SHA-384, in one call
    for leak in (
        lambda: key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        key.private_numbers,
        lambda: key.exchange(ec.ECDH(), inner.public_key()),  # type: ignore[union-attr]
    ):
        with pytest.raises(KeyNeverLeavesItsStore, match="never leaves"):
            leak()


def _validity() -> pki.Validity:
    from tests.fakes import NOW

    return pki.Validity(NOW, NOW.replace(year=NOW.year + 1))


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048])
def test_everything_a_held_ca_signs_goes_through_its_store(key_type: KeyType) -> None:
    keys = InMemoryKeyStore()
    service = make_service(key_store=keys)
    root = service.create_root(root_request(key_type=key_type))
    cell = service.create_intermediate(cell_request(key_type=key_type))
    assert (root.record.key_store, cell.record.key_store) == ("pkcs11", "pkcs11")
    assert root.record.private_key_pem is None and cell.record.private_key_pem is None
    assert {root.record.key_id, cell.record.key_id} == set(keys.keys)
    signed = keys.signatures  # the root's self-signature and the cell's
    assert signed == 2

    devices = service.create_devices(
        IssueRequest(CertType.CLIENT, parent_fqdn=CELL, count=5)
    )  # the bulk's threads
    renewed_cell = service.renew(CELL, RenewRequest())
    service.create_devices(IssueRequest(CertType.CLIENT, parent_fqdn=CELL))
    assert keys.signatures == signed + 5 + 1 + 1
    assert renewed_cell.record.key_id == cell.record.key_id
    assert renewed_cell.record.key_store == "pkcs11"
    cell_certificate = pki.load_certificate(renewed_cell.record.certificate_pem)
    for device in devices:
        certificate = pki.load_certificate(device.record.certificate_pem)
        certificate.verify_directly_issued_by(cell_certificate)  # same key, renewed

    authority = service.authorities.get(CELL, Concept.ISSUER)
    crl = build_crl(authority.signing, [], _validity(), 1)
    assert crl.is_signature_valid(cell_certificate.public_key())  # type: ignore[arg-type]
    assert keys.signatures == signed + 8


def test_a_key_whose_ca_lost_the_race_for_its_name_is_discarded() -> None:
    """The name was free when asked, then taken before the CA was stored: the key made for it
    leaves the store again, and the CA that won keeps its own."""
    keys = InMemoryKeyStore()
    store = InMemoryStore()
    service = make_service(store=store, key_store=keys)
    winner = make_service(store=store, key_store=keys)

    original = store.put_certificate

    def put_after_the_winner(record: CertificateRecord) -> None:
        store.put_certificate = original  # type: ignore[method-assign]
        winner.create_root(root_request())
        original(record)

    store.put_certificate = put_after_the_winner  # type: ignore[method-assign]
    with pytest.raises(AlreadyExists):
        service.create_root(root_request())
    assert len(keys.discarded) == 1
    stored = store.get_certificate(ROOT)
    assert list(keys.keys) == [stored.key_id] != keys.discarded


def test_a_key_whose_parent_was_revoked_meanwhile_is_discarded() -> None:
    keys = InMemoryKeyStore()
    store = InMemoryStore()
    service = make_service(store=store, key_store=keys)
    service.create_root(root_request())
    original = keys.create_key

    def revoke_the_parent_meanwhile(ca_fqdn: str, key_type: KeyType) -> object:
        key = original(ca_fqdn, key_type)
        make_service(store=store, key_store=keys).revoke(ROOT, "keyCompromise")
        return key

    keys.create_key = revoke_the_parent_meanwhile  # type: ignore[method-assign]
    with pytest.raises(CaRevoked):
        service.create_intermediate(cell_request())
    assert len(keys.discarded) == 1 and len(keys.keys) == 1  # the root's is kept


def test_a_store_not_offered_and_an_ed25519_ca_are_refused_before_a_key_is_made() -> None:
    keys = InMemoryKeyStore()
    service = make_service(key_store=keys)
    with pytest.raises(InvalidRequest) as refused:
        service.create_root(IssueRequest(CertType.ROOT, fqdn=ROOT, key_store="kms"))
    assert refused.value.concept is Concept.KEY_STORE
    assert "kms is not offered by this deployment; it offers file, pkcs11" in refused.value.message
    with pytest.raises(InvalidRequest) as ed25519:
        service.create_root(root_request(key_type=KeyType.ED25519))
    assert ed25519.value.concept is Concept.KEY_TYPE
    assert keys.keys == {}


def test_a_held_ca_is_not_loaded_without_its_store_or_with_another_key() -> None:
    keys = InMemoryKeyStore()
    store = InMemoryStore()
    make_service(store=store, key_store=keys).create_root(root_request())
    file_cell = IssueRequest(CertType.INTERMEDIATE, fqdn=CELL, parent_fqdn=ROOT)
    with pytest.raises(StorageError, match="held in pkcs11, which this deployment does not reach"):
        make_service(store=store).create_intermediate(file_cell)
    record = store.get_certificate(ROOT)
    assert record.key_id is not None
    keys.keys[record.key_id] = pki.generate_private_key(KeyType.EC_P256)  # not the CA's
    with pytest.raises(StorageError, match="is not its certificate's"):
        make_service(store=store, key_store=keys).create_intermediate(file_cell)


def test_a_store_with_a_bulk_limit_bounds_the_bulks_of_its_cas_only() -> None:
    keys = InMemoryKeyStore()
    keys.max_bulk = 2
    service = make_service(key_store=keys)
    service.create_root(root_request())
    service.create_intermediate(cell_request())
    service.create_intermediate(
        IssueRequest(CertType.INTERMEDIATE, fqdn="file.example.com", parent_fqdn=ROOT)
    )
    with pytest.raises(InvalidRequest) as refused:
        service.create_devices(IssueRequest(CertType.CLIENT, parent_fqdn=CELL, count=3))
    assert refused.value.concept is Concept.COUNT
    assert refused.value.message.startswith(f"must be at most 2 under CA {CELL}, whose key is in")
    assert (
        len(service.create_devices(IssueRequest(CertType.CLIENT, parent_fqdn=CELL, count=2))) == 2
    )
    under_file = IssueRequest(CertType.CLIENT, parent_fqdn="file.example.com", count=3)
    assert len(service.create_devices(under_file)) == 3

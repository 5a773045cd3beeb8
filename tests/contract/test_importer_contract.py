"""The CertificateImporter port: one contract over every adapter, then what each adapter adds.

The certificates are real (root -> intermediate -> server, built with chalicelib.pki): ACM parses
what it is given, so a made-up PEM would only test the failure path. AcmImporter runs on moto;
Stubber stands in only for the ACM faults moto cannot produce.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from cryptography import x509

from chalicelib.adapters.aws.importer import AcmImporter
from chalicelib.adapters.local.importer import NullImporter
from chalicelib.model import CertificateRecord, CertType, KeyType, SubjectDetails
from chalicelib.ownership import Ownership
from chalicelib.pki import (
    SigningAuthority,
    Validity,
    build_subject,
    certificate_to_pem,
    fingerprint_sha256,
    generate_private_key,
    intermediate_profile,
    load_certificate,
    private_key_to_pem,
    root_profile,
    serial_hex,
    server_profile,
    sign_certificate,
)
from chalicelib.ports.importer import CertificateImporter, CertificateImportError
from tests.backends import AwsResources, adapter_params

OWNER = Ownership("iot-cert-service", "contract")

ROOT_FQDN = "example.com"
INTERMEDIATE_FQDN = "servers.example.com"
SUBJECT = SubjectDetails(country="DE", organization="Example IoT")
ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@functools.cache
def with_chain(made: tuple[CertificateRecord, str]) -> tuple[CertificateRecord, str, str]:
    """(record, key) with the chain above the record, as the issuer hands it over."""
    record, key = made
    return record, key, record.chain_pem


def server_authority() -> tuple[SigningAuthority, str]:
    """Root and server intermediate, built once: the signing intermediate and the chain PEM."""
    root_key = generate_private_key(KeyType.EC_P384)
    root_subject = build_subject(ROOT_FQDN, SUBJECT)
    root = sign_certificate(
        root_profile(),
        root_subject,
        root_key.public_key(),
        Validity(now() - timedelta(minutes=5), now() + timedelta(days=3650)),
        authority=None,
        self_signing_key=root_key,
    )
    intermediate_key = generate_private_key(KeyType.EC_P256)
    intermediate = sign_certificate(
        intermediate_profile(0),
        build_subject(INTERMEDIATE_FQDN, SUBJECT),
        intermediate_key.public_key(),
        Validity(now() - timedelta(minutes=5), now() + timedelta(days=1825)),
        SigningAuthority(root, root_key),
    )
    chain_pem = certificate_to_pem(intermediate) + certificate_to_pem(root)
    return SigningAuthority(intermediate, intermediate_key), chain_pem


def make_server_certificate(
    fqdn: str = f"mqtt.{INTERMEDIATE_FQDN}",
    key_type: KeyType = KeyType.EC_P256,
    validity: Validity | None = None,
) -> tuple[CertificateRecord, str]:
    """A server certificate as the service stores it, and its private key PEM."""
    authority, chain_pem = server_authority()
    key = generate_private_key(key_type)
    issued_at = now()
    certificate = sign_certificate(
        server_profile(key_type, [fqdn], []),
        build_subject(fqdn, SUBJECT),
        key.public_key(),
        validity or Validity(issued_at - timedelta(minutes=5), issued_at + timedelta(days=397)),
        authority,
    )
    private_key_pem = private_key_to_pem(key)
    record = CertificateRecord(
        fqdn=fqdn,
        cert_type=CertType.SERVER,
        parent_fqdn=INTERMEDIATE_FQDN,
        serial=serial_hex(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        key_type=key_type,
        fingerprint_sha256=fingerprint_sha256(certificate),
        certificate_pem=certificate_to_pem(certificate),
        chain_pem=chain_pem,
        private_key_pem=private_key_pem,
        created_at=issued_at,
    )
    return record, private_key_pem


def parse_certificates(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode("ascii"))


ImporterFactory = Callable[[pytest.FixtureRequest], CertificateImporter]


def _null_importer(request: pytest.FixtureRequest) -> CertificateImporter:
    return NullImporter()


def _acm_importer(request: pytest.FixtureRequest) -> CertificateImporter:
    aws: AwsResources = request.getfixturevalue("aws_resources")
    return AcmImporter(aws.session.client("acm"), OWNER)


IMPORTER_FACTORIES: list[tuple[str, ImporterFactory]] = [
    ("null", _null_importer),
    ("acm", _acm_importer),
]


@pytest.fixture(params=adapter_params(IMPORTER_FACTORIES))
def importer(request: pytest.FixtureRequest) -> CertificateImporter:
    return request.param(request)


class TestCertificateImporterContract:
    @pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048])
    def test_the_result_is_none_or_an_acm_certificate_arn(
        self, importer: CertificateImporter, key_type: KeyType
    ) -> None:
        record, private_key_pem = make_server_certificate(key_type=key_type)

        result = importer.import_server_certificate(record, private_key_pem, record.chain_pem)

        assert result is None or (isinstance(result, str) and ACM_ARN.match(result)), result

    def test_two_certificates_get_two_arns_or_none_at_all(
        self, importer: CertificateImporter
    ) -> None:
        first = importer.import_server_certificate(
            *with_chain(make_server_certificate("a.example.com"))
        )
        second = importer.import_server_certificate(
            *with_chain(make_server_certificate("b.example.com"))
        )

        assert (first is None and second is None) or (
            first is not None and second is not None and first != second
        )

    def test_what_was_imported_is_found_again_and_nothing_else(
        self, importer: CertificateImporter
    ) -> None:
        imported, key = make_server_certificate("found.example.com")
        arn = importer.import_server_certificate(imported, key, imported.chain_pem)
        never_imported, _ = make_server_certificate("never.example.com")
        same_name_other_certificate, _ = make_server_certificate("found.example.com")

        found = importer.find_imported([imported, never_imported])
        impostor = importer.find_imported([same_name_other_certificate])

        assert found == ({} if arn is None else {imported.fqdn: arn})
        assert impostor == {}


class TestAcmImporterLookup:
    def test_every_key_type_the_service_issues_is_found(self, acm_importer: AcmImporter) -> None:
        records = {}
        for key_type in (KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048, KeyType.RSA_3072):
            record, key = make_server_certificate(f"{key_type.value.lower()}.example.com", key_type)
            records[record.fqdn] = (
                acm_importer.import_server_certificate(record, key, record.chain_pem),
                record,
            )

        found = acm_importer.find_imported([record for _, record in records.values()])

        assert found == {fqdn: arn for fqdn, (arn, _) in records.items()}

    def test_the_listing_asks_acm_for_ec_keys_too(self, aws_resources: AwsResources) -> None:
        """ACM's ListCertificates answers only RSA 1024 and 2048 keys unless asked for others
        (moto answers every key type either way, so the request itself is checked here)."""
        client = aws_resources.session.client("acm")
        asked: list[dict[str, Any]] = []
        client.meta.events.register(
            "provide-client-params.acm.ListCertificates",
            lambda params, **_: asked.append(dict(params)),
        )
        record, key = make_server_certificate("asked.example.com")
        AcmImporter(client, OWNER).import_server_certificate(record, key, record.chain_pem)

        AcmImporter(client, OWNER).find_imported([record])

        assert asked and all(
            {"EC_prime256v1", "EC_secp384r1"} <= set(params["Includes"]["keyTypes"])
            for params in asked
        )


class TestNullImporter:
    def test_nothing_is_imported_and_no_arn_is_returned(self) -> None:
        assert (
            NullImporter().import_server_certificate(*with_chain(make_server_certificate())) is None
        )


def expire_the_certificate(record: CertificateRecord, key: str) -> tuple[CertificateRecord, str]:
    """The same name, re-issued with a validity that ended yesterday."""
    expired = Validity(now() - timedelta(days=30), now() - timedelta(days=1))
    return make_server_certificate(record.fqdn, validity=expired)


def corrupt_the_certificate(record: CertificateRecord, key: str) -> tuple[CertificateRecord, str]:
    """The DER's first byte changed (`MII` -> `AII`): a PEM that no longer parses."""
    begin = "-----BEGIN CERTIFICATE-----\n"
    corrupt = record.certificate_pem.replace(begin + "M", begin + "A", 1)
    assert corrupt != record.certificate_pem
    return dataclasses.replace(record, certificate_pem=corrupt), key


def unwrap_the_key(record: CertificateRecord, key: str) -> tuple[CertificateRecord, str]:
    """The private key under the wrong PEM label."""
    return record, key.replace("PRIVATE KEY", "PUBLIC KEY")


@pytest.fixture
def acm_importer(aws_resources: AwsResources) -> AcmImporter:
    return AcmImporter(aws_resources.session.client("acm"), OWNER)


class TestAcmImporter:
    """What ACM holds after an import, and how a refused import is reported."""

    def test_acm_holds_the_same_certificate_and_its_chain(
        self, acm_importer: AcmImporter, aws_resources: AwsResources
    ) -> None:
        record, private_key_pem = make_server_certificate()
        acm = aws_resources.session.client("acm")

        arn = acm_importer.import_server_certificate(record, private_key_pem, record.chain_pem)

        assert arn is not None
        stored = acm.get_certificate(CertificateArn=arn)
        assert load_certificate(stored["Certificate"]) == load_certificate(record.certificate_pem)
        expected_chain = parse_certificates(record.chain_pem)
        returned_chain = parse_certificates(stored["CertificateChain"])
        # ACM may append its own root after the chain it was given (moto does).
        assert returned_chain[: len(expected_chain)] == expected_chain
        described = acm.describe_certificate(CertificateArn=arn)["Certificate"]
        assert described["CertificateArn"] == arn
        assert described["Type"] == "IMPORTED"
        assert described["DomainName"] == record.fqdn
        assert record.fqdn in described["SubjectAlternativeNames"]
        assert described["NotAfter"] == record.not_after

    def test_the_imported_certificate_is_tagged_with_its_fqdn_and_owner(
        self, acm_importer: AcmImporter, aws_resources: AwsResources
    ) -> None:
        """A re-import (a renewal, into the same ARN) sends no tags, which ACM refuses; ACM
        keeps those of the first import (moto drops them, so that is not checked here)."""
        record, private_key_pem = make_server_certificate()
        acm = aws_resources.session.client("acm")
        sent: list[dict[str, Any]] = []
        acm.meta.events.register(
            "provide-client-params.acm.ImportCertificate",
            lambda params, **_: sent.append(dict(params)),
        )
        importer = AcmImporter(acm, OWNER)

        arn = importer.import_server_certificate(record, private_key_pem, record.chain_pem)
        tags = acm.list_tags_for_certificate(CertificateArn=arn)["Tags"]
        renewed, renewed_key = make_server_certificate(record.fqdn)
        again = importer.import_server_certificate(
            dataclasses.replace(renewed, acm_certificate_arn=arn), renewed_key, renewed.chain_pem
        )

        expected = {"fqdn": record.fqdn, "app": "iot-cert-service", "stage": "contract"}
        assert {tag["Key"]: tag["Value"] for tag in tags} == expected
        assert again == arn
        assert "Tags" in sent[0] and "Tags" not in sent[1]

    @pytest.mark.parametrize(
        "break_import",
        [expire_the_certificate, corrupt_the_certificate, unwrap_the_key],
        ids=["expired-certificate", "corrupt-certificate", "key-not-pem"],
    )
    def test_a_certificate_acm_refuses_raises_certificate_import_error(
        self,
        acm_importer: AcmImporter,
        aws_resources: AwsResources,
        break_import: Callable[[CertificateRecord, str], tuple[CertificateRecord, str]],
    ) -> None:
        record, private_key_pem = break_import(*make_server_certificate())

        with pytest.raises(CertificateImportError) as raised:
            acm_importer.import_server_certificate(record, private_key_pem, record.chain_pem)

        assert record.fqdn in str(raised.value)
        assert isinstance(raised.value.__cause__, ClientError)
        listed = aws_resources.session.client("acm").list_certificates()
        assert listed["CertificateSummaryList"] == []

    def test_an_acm_fault_raises_certificate_import_error(self) -> None:
        """A quota fault moto cannot produce; the stub also checks what the importer sends."""
        record, private_key_pem = make_server_certificate()
        client = boto3.session.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # fake: Stubber answers before any request
            region_name="us-east-1",
        ).client("acm")
        expected = {
            "Certificate": record.certificate_pem.encode(),
            "PrivateKey": private_key_pem.encode(),
            "CertificateChain": record.chain_pem.encode(),
            "Tags": ANY,
        }

        with Stubber(client) as stubber:
            stubber.add_client_error(
                "import_certificate",
                service_error_code="LimitExceededException",
                service_message="The certificate quota has been exceeded",
                http_status_code=400,
                expected_params=expected,
            )
            with pytest.raises(CertificateImportError) as raised:
                AcmImporter(client, OWNER).import_server_certificate(
                    record, private_key_pem, record.chain_pem
                )
            stubber.assert_no_pending_responses()

        assert record.fqdn in str(raised.value)
        assert "LimitExceededException" in str(raised.value)
        assert isinstance(raised.value.__cause__, ClientError)

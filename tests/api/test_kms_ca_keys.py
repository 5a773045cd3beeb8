"""CA keys in AWS KMS (under moto), the AWS backend's default: no CA key is in the bucket, and
each KMS key is what the stage's teardown and its security rely on (spec, usage, policy, tags,
alias)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.adapters.aws.kms import ADMINISTRATION, MAX_BULK_UNDER_KMS, USE
from chalicelib.config import load_settings
from devtools.aws_resources import AWS_ENVIRONMENT
from tests.backends import MotoBackend
from tests.helpers import CELL1, ROOT, ApiClient, assert_error, create_hierarchy

pytestmark = pytest.mark.parametrize("backend", ["aws"], indirect=True)
PEM_KEY = re.compile(
    rb"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----.+?-----END (?:[A-Z]+ )*PRIVATE KEY-----", re.S
)
CSR = (
    x509.CertificateSigningRequestBuilder()
    .subject_name(x509.Name([]))
    .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    .public_bytes(serialization.Encoding.PEM)
    .decode()
)
KEY_SPECS = {"EC_P256": "ECC_NIST_P256", "EC_P384": "ECC_NIST_P384", "RSA_2048": "RSA_2048"}


@pytest.fixture
def pki(backend_api: ApiClient) -> dict[str, dict[str, Any]]:
    """The example hierarchy with no `key_store` asked for, and what it signs: a server, a bulk of
    devices, a renewed device and cell, a revocation and its CRL."""
    created = create_hierarchy(backend_api)
    created["rsa.example.com"] = backend_api.create(
        "intermediate", fqdn="rsa.example.com", key_type="RSA_2048"
    )
    backend_api.create("server", fqdn="mqtt.servers.example.com")
    bulk = backend_api.post("/certificates/device", {"parent_fqdn": CELL1, "count": 5})
    assert bulk.status_code == 201, bulk.body
    device = bulk.body["items"][0]["fqdn"]
    for renewed in (device, CELL1):
        assert backend_api.post(f"/certificates/{renewed}/renew", {}).status_code == 201
    assert backend_api.post(f"/certificates/{device}/revoke", {}).status_code == 200
    assert backend_api.get(f"/certificates/{CELL1}/crl").status_code == 200
    return created


def test_no_object_of_the_bucket_holds_a_ca_key(
    backend: MotoBackend, backend_api: ApiClient, pki: dict[str, dict[str, Any]]
) -> None:
    ca_keys = []
    for fqdn in pki:
        shown = backend_api.get(f"/certificates/{fqdn}").body
        assert shown["key_store"] == "kms", fqdn  # the AWS backend's default
        ca_keys.append(x509.load_pem_x509_certificate(shown["certificate"].encode()).public_key())
    versions = backend.s3.list_object_versions(Bucket=backend.bucket)["Versions"]
    assert len(versions) > 2 * len(pki)  # CAs, their renewal, servers, devices, revocations
    leaf_keys = 0
    for version in versions:
        body = backend.s3.get_object(
            Bucket=backend.bucket, Key=version["Key"], VersionId=version["VersionId"]
        )["Body"].read()
        for block in PEM_KEY.findall(body.replace(b"\\n", b"\n")):
            key = serialization.load_pem_private_key(block, None)
            assert key.public_key() not in ca_keys, version["Key"]
            leaf_keys += 1
        document = json.loads(body)
        if document.get("type") in ("Root", "Intermediate"):
            assert document["private_key"] is None, version["Key"]
            assert document["key_store"] == "kms" and document["key_id"].startswith("arn:aws:kms:")
    assert leaf_keys >= 7  # the server's and the devices' (leaf keys are stored): the scan reads


def test_each_ca_key_is_a_signing_key_only_the_api_role_may_use(
    backend: MotoBackend, backend_api: ApiClient, pki: dict[str, dict[str, Any]]
) -> None:
    kms = backend._session.client("kms")
    ownership = load_settings().ownership
    role = AWS_ENVIRONMENT["CA_SIGNER_ROLE_ARN"]
    account = role.split(":")[4]
    key_ids = set()
    for fqdn, created in pki.items():
        key_id = backend_api.get(f"/certificates/{fqdn}").body["key_id"]
        key_ids.add(key_id)
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert metadata["KeyUsage"] == "SIGN_VERIFY"
        assert metadata["KeySpec"] == KEY_SPECS[created["key_type"]]
        public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
        certificate = x509.load_pem_x509_certificate(created["certificate"].encode())
        assert public == certificate.public_key()

        policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        grants = {json.dumps(s["Principal"]): set(s["Action"]) for s in policy["Statement"]}
        assert all(s["Effect"] == "Allow" for s in policy["Statement"])
        assert grants == {
            json.dumps({"AWS": f"arn:aws:iam::{account}:root"}): set(ADMINISTRATION),
            json.dumps({"AWS": role}): set(USE),
        }
        assert set(USE) == {"kms:Sign", "kms:GetPublicKey"}
        assert not any("Sign" in action or "*" in action for action in ADMINISTRATION)

        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}
        assert tags == {"app": ownership.app, "stage": ownership.stage, "ca": fqdn}
        aliases = kms.list_aliases(KeyId=metadata["KeyId"])["Aliases"]
        assert [alias["AliasName"].rsplit("-", 1)[0] for alias in aliases] == [
            f"alias/{ownership.app}/{ownership.stage}/{fqdn.replace('.', '_')}"
        ]
    assert len(key_ids) == len(pki)  # a key per CA; a renewal keeps its CA's
    assert ROOT in pki


def test_a_ca_of_another_store_is_refused_before_anything_is_made(
    backend: MotoBackend, backend_api: ApiClient
) -> None:
    kms = backend._session.client("kms")
    keys_before = kms.list_keys()["Keys"]
    before = backend.snapshot()
    for body in ({"fqdn": "a.org", "key_store": "pkcs11"},
                 {"fqdn": "a.org", "key_store": "kms", "key_type": "ED25519"}):  # fmt: skip
        response = backend_api.post("/certificates/root", body)
        assert response.status_code == 400, response.body
    created = backend_api.create("root", fqdn="b.org", key_store="file")
    assert backend_api.get("/certificates/b.org").body["key_store"] == "file"
    assert backend_api.post("/certificates/root", {"fqdn": "b.org"}).status_code == 409
    assert kms.list_keys()["Keys"] == keys_before  # neither a refusal nor a file CA made a key
    assert backend.snapshot() != before and created["fqdn"] == "b.org"


def test_a_bulk_under_a_kms_ca_is_sized_for_the_accounts_signing_rate(
    backend: MotoBackend, backend_api: ApiClient
) -> None:
    backend_api.create("root", fqdn=ROOT)
    backend_api.create("intermediate", fqdn="cell.example.com")
    before = backend.snapshot()
    for body in ({"count": MAX_BULK_UNDER_KMS + 1}, {"csrs": [CSR] * (MAX_BULK_UNDER_KMS + 1)}):
        response = backend_api.post("/certificates/device", {"parent_fqdn": "cell.example.com",
                                                              **body})  # fmt: skip
        field = next(iter(body))
        assert_error(response, 400, field, f"must be at most {MAX_BULK_UNDER_KMS} under CA "
                     "cell.example.com, whose key is in kms")  # fmt: skip
    assert backend.snapshot() == before  # refused before anything was signed

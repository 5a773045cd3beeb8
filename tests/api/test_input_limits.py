"""Limits and normalisation of request input, each on a fresh store on both backends: the
validity cut to a short-lived root, a body of exactly 64 KiB read and one byte more refused, and
an upper-case FQDN folded to lower case."""

from __future__ import annotations

import json
import re

from tests.backends import Backend, MotoBackend
from tests.helpers import MAX_BODY_BYTES, ApiClient, assert_rejected


def test_validity_beyond_a_short_lived_root(backend_api: ApiClient, backend: Backend) -> None:
    root = backend_api.create("root", fqdn="short.org", validity_days=30)
    message = assert_rejected(
        backend_api,
        backend,
        "POST",
        "/certificates/intermediate",
        {"fqdn": "ca.short.org", "validity_days": 31},
        field="validity_days",
        contains=root["not_after"],
    )
    assert re.search(r"at most (29|30)\b", message), message


def test_body_of_exactly_64_kib_is_read(backend_api: ApiClient, backend: Backend) -> None:
    body = json.dumps({"fqdn": "padded.org"})
    exact = body + " " * (MAX_BODY_BYTES - len(body))
    assert_rejected(
        backend_api, backend, "POST", "/certificates/root", exact + " ", status=413, field="body"
    )
    created = backend_api.post("/certificates/root", exact)
    assert created.status_code == 201, created.body
    assert created.body["fqdn"] == "padded.org"


def stored_keys(backend: Backend) -> set[str]:
    """The names of the stored certificate objects: file paths locally, S3 keys on AWS."""
    snapshot = backend.snapshot()
    if isinstance(backend, MotoBackend):
        return {key for key, _version in snapshot["objects"]}
    return set(snapshot["files"])


def test_uppercase_fqdn_is_folded_to_lowercase(backend_api: ApiClient, backend: Backend) -> None:
    created = backend_api.post("/certificates/root", {"fqdn": "Example.ORG"})
    assert created.status_code == 201, created.body
    assert created.body["fqdn"] == "example.org"
    assert json.loads(backend.object_bytes("example.org"))["fqdn"] == "example.org"
    assert stored_keys(backend) == {"certificates/example.org.json"}

    fetched = backend_api.get("/certificates/EXAMPLE.org")
    assert fetched.status_code == 200, fetched.body
    assert fetched.body["serial"] == created.body["serial"]

    intermediate = backend_api.post(
        "/certificates/intermediate", {"fqdn": "CA.Example.Org", "parent_fqdn": "EXAMPLE.ORG"}
    )
    assert intermediate.status_code == 201, intermediate.body
    assert (intermediate.body["fqdn"], intermediate.body["parent_fqdn"]) == (
        "ca.example.org",
        "example.org",
    )

    again = backend_api.post("/certificates/root", {"fqdn": "example.org"})
    assert again.status_code == 409, again.body

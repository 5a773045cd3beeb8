"""What moto (5.2.5) lacks of AWS IoT and a stage's teardown needs, added to its in-process IoT
for the tests that ask (`with_ca_tags_and_listing`):

- tags, on CA certificates and policies: moto drops RegisterCACertificate's `tags` and has no
  TagResource, UntagResource or ListTagsForResource (which Terraform's `aws_iot_policy` calls);
- ListCACertificates, which moto does not implement;
- pages: moto answers ListCertificatesByCA in one page whatever `pageSize`.

The additions keep AWS IoT's shapes (`{"Key", "Value"}` tags, `marker`/`nextMarker` pages, the
marker opaque to the caller; here an offset, so a caller that deleted what it listed before
asking for the next page would skip certificates). Everything else is moto's own.
"""

from __future__ import annotations

from typing import Any

import pytest
from moto.core.responses import ActionResult
from moto.iot.exceptions import ResourceNotFoundException
from moto.iot.models import FakeCertificate, IoTBackend
from moto.iot.responses import IoTResponse

DEFAULT_PAGE_SIZE = 25  # AWS IoT's, for ListCACertificates


def _tags(backend: IoTBackend) -> dict[str, list[dict[str, str]]]:
    """Tags by CA ARN, kept on the backend: moto's reset between tests clears them with it."""
    return backend.__dict__.setdefault("test_ca_tags", {})


def _page(response: IoTResponse, items: list[Any], default_size: int) -> dict[str, Any]:
    size = response._get_int_param("pageSize") or default_size
    start = int(response._get_param("marker") or 0)
    page: dict[str, Any] = {"certificates": [_summary(c) for c in items[start : start + size]]}
    if start + size < len(items):
        page["nextMarker"] = str(start + size)
    return page


def _summary(certificate: FakeCertificate) -> dict[str, Any]:
    return {
        "certificateArn": certificate.arn,
        "certificateId": certificate.certificate_id,
        "status": certificate.status,
        "creationDate": certificate.creation_date,
    }


def with_ca_tags_and_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adds the operations above to moto's IoT for the rest of the test."""
    register = IoTResponse.register_ca_certificate

    def register_ca_certificate(self: IoTResponse) -> ActionResult:
        registered = register(self)
        arn = registered.result["certificateArn"]  # type: ignore[index]
        _tags(self.iot_backend)[arn] = list(self._get_param("tags") or [])
        return registered

    def tagged(self: IoTResponse) -> str:
        """The ARN of the request, which must name a CA certificate or a policy."""
        arn = str(self._get_param("resourceArn"))
        backend = self.iot_backend
        known = {ca.arn for ca in backend.ca_certificates.values()}
        known |= {policy.arn for policy in backend.policies.values()}
        if arn not in known:
            raise ResourceNotFoundException()
        return arn

    def list_tags_for_resource(self: IoTResponse) -> ActionResult:
        return ActionResult({"tags": _tags(self.iot_backend).get(tagged(self), [])})

    def tag_resource(self: IoTResponse) -> ActionResult:
        tags = _tags(self.iot_backend).setdefault(tagged(self), [])
        added = list(self._get_param("tags") or [])
        keys = {tag["Key"] for tag in added}
        tags[:] = [tag for tag in tags if tag["Key"] not in keys] + added
        return ActionResult({})

    def untag_resource(self: IoTResponse) -> ActionResult:
        tags = _tags(self.iot_backend).setdefault(tagged(self), [])
        removed = set(self._get_param("tagKeys") or [])
        tags[:] = [tag for tag in tags if tag["Key"] not in removed]
        return ActionResult({})

    def list_ca_certificates(self: IoTResponse) -> ActionResult:
        cas = list(self.iot_backend.ca_certificates.values())
        return ActionResult(_page(self, cas, DEFAULT_PAGE_SIZE))

    def list_certificates_by_ca(self: IoTResponse) -> ActionResult:
        below = self.iot_backend.list_certificates_by_ca(self._get_param("caCertificateId"))
        return ActionResult(_page(self, below, len(below) or 1))

    for name, method in (
        ("register_ca_certificate", register_ca_certificate),
        ("list_tags_for_resource", list_tags_for_resource),
        ("tag_resource", tag_resource),
        ("untag_resource", untag_resource),
        ("list_ca_certificates", list_ca_certificates),
        ("list_certificates_by_ca", list_certificates_by_ca),
    ):
        monkeypatch.setattr(IoTResponse, name, method, raising=False)

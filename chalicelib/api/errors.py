"""The one place where domain errors become HTTP responses."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from chalice import (
    BadRequestError,
    Blueprint,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Response,
)
from chalice.app import ChaliceViewError

from chalicelib.errors import (
    CertificateServiceError,
    Concept,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Unsupported,
)

logger = logging.getLogger(__name__)


class EntityTooLargeError(ChaliceViewError):
    STATUS_CODE = 413


class NotImplementedOnBackendError(ChaliceViewError):
    STATUS_CODE = 501


_HTTP_ERRORS: tuple[tuple[type[Exception], type[ChaliceViewError]], ...] = (
    (InvalidRequest, BadRequestError),
    (NotFound, NotFoundError),
    (Conflict, ConflictError),
    (Forbidden, ForbiddenError),
    (PayloadTooLarge, EntityTooLargeError),
    (Unsupported, NotImplementedOnBackendError),
)


FIELDS: dict[Concept, str] = {
    Concept.CERTIFICATE: "certificate",
    Concept.ISSUER: "parent_fqdn",
    Concept.NAME: "fqdn",
    Concept.VALIDITY: "validity_days",
    Concept.KEY_TYPE: "key_type",
    Concept.KEY_STORE: "key_store",
    Concept.COUNT: "count",
    Concept.CSR: "csr",
    Concept.CSRS: "csrs",
    Concept.PATH_LENGTH: "path_length",
    Concept.SERIAL: "serial",
    Concept.KEY_REUSE: "reuse_key",
    Concept.AWS_IOT: "aws_iot",
    Concept.PROVISIONING: "provisioning",
}
"""What each concept is called in the API's requests (a route may call one otherwise)."""
LIST_FIELDS = {Concept.ISSUER: "parent"}
"""GET /certificates names the CA whose certificates it lists `parent`."""
_LIST_FORMS = {Concept.CSR: "csrs"}
"""A concept's field when the error is about one item of a list (`csrs[2]`)."""


def wording(err: CertificateServiceError, fields: Mapping[Concept, str] | None = None) -> str:
    """The error's message, led by the request's field it is about."""
    field = err.field
    if field is None and err.concept is not None:
        field = (fields or {}).get(err.concept) or FIELDS[err.concept]
        if err.index is not None:
            field = f"{_LIST_FORMS.get(err.concept, field)}[{err.index}]"
    return f"{field}: {err.message}" if field else err.message


def _request_id(blueprint: Blueprint) -> str:
    context = getattr(blueprint, "lambda_context", None)
    return getattr(context, "aws_request_id", None) or str(uuid.uuid4())


def _internal_error(blueprint: Blueprint) -> Response:
    """Logged with the request id and the traceback; the client gets the id, never the trace."""
    request_id = _request_id(blueprint)
    logger.exception("request %s failed", request_id)
    return Response(
        body={
            "Code": "InternalServerError",
            "Message": f"An internal error occurred (request id {request_id}).",
        },
        status_code=500,
    )


def http_errors(
    blueprint: Blueprint, fields: Mapping[Concept, str] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Map domain errors to 4xx, worded with the request's fields (`fields`: a route's own
    names for some concepts); log anything else with the request id and answer a bare 500."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except CertificateServiceError as err:
                http_error = next(
                    (http for domain, http in _HTTP_ERRORS if isinstance(err, domain)), None
                )
                if http_error is None:  # StorageError: a fault, answered like any other
                    return _internal_error(blueprint)
                raise http_error(wording(err, fields)) from err
            except ChaliceViewError:
                raise
            except Exception:
                return _internal_error(blueprint)

        return handle

    return decorate

"""The one place where domain errors become HTTP responses."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
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


def _request_id(blueprint: Blueprint) -> str:
    context = getattr(blueprint, "lambda_context", None)
    return getattr(context, "aws_request_id", None) or str(uuid.uuid4())


def http_errors(blueprint: Blueprint) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Map domain errors to 4xx; log anything else with the request id and answer a bare 500."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def handle(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except tuple(domain for domain, _ in _HTTP_ERRORS) as err:
                http_error = next(http for domain, http in _HTTP_ERRORS if isinstance(err, domain))
                raise http_error(str(err)) from err
            except ChaliceViewError:
                raise
            except Exception:
                request_id = _request_id(blueprint)
                logger.exception("request %s failed", request_id)
                return Response(
                    body={
                        "Code": "InternalServerError",
                        "Message": f"An internal error occurred (request id {request_id}).",
                    },
                    status_code=500,
                )

        return handle

    return decorate

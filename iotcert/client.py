"""HTTP to the service: JSON in, JSON or files out, a Bearer token or SigV4, errors to act on.

The standard library's urllib.request rather than requests: requests is only a development
dependency of the service, and the client should need nothing that the service does not already
install (botocore, for SigV4, comes with boto3).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any, Protocol

DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 120.0
"""Seconds to wait for an answer. API Gateway gives up after 29 s; a local bulk of 1000 devices
can take longer on a small machine."""
API_GATEWAY_HOST = re.compile(r"[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com")
_LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class CliError(Exception):
    """A failure the user can act on: printed as `iotcert: <message>`, exit status 1."""


class ApiError(CliError):
    """The service answered with an error; its `Message` is what the user reads, in the
    command's own terms (`in_cli_terms`)."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(f"{message} (HTTP {status}{f' {code}' if code else ''})")
        self.status = status
        self.code = code
        self.message = message

    def in_cli_terms(self, flags: Mapping[str, str]) -> str:
        """The message led by the command's option for the field the API named (`--parent`
        for `parent_fqdn`), with what to do about a missing token."""
        message = self.message
        field, separator, rest = message.partition(": ")
        if separator:
            name, bracket, index = field.partition("[")
            if name in flags:
                message = f"{flags[name]}{bracket}{index}: {rest}"
        if self.status == 401:
            message += "; set IOTCERT_TOKEN to the server's API_TOKEN"
        return f"{message} (HTTP {self.status}{f' {self.code}' if self.code else ''})"


class Authorization(Protocol):
    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        """The headers to send, the authorization added."""
        ...


class BearerToken:
    """`API_TOKEN` of a local server (the client reads it from IOTCERT_TOKEN)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {self._token}"}


class SigV4:
    """AWS Signature Version 4 for API Gateway (service `execute-api`), with the credentials
    botocore finds: environment, profile, SSO or instance role."""

    def __init__(self, base_url: str, region: str | None) -> None:
        # Imported here: only a deployed stage needs botocore, and `--help` stays quick.
        import botocore.session
        from botocore.auth import SigV4Auth

        session = botocore.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise CliError(
                "SigV4 signing needs AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            )
        region = region or _url_region(base_url) or os.environ.get("AWS_REGION")
        region = region or session.get_config_variable("region")
        if not region:
            raise CliError("SigV4 signing needs a region: give --region or set AWS_REGION")
        self.region = region
        self._auth = SigV4Auth(credentials, "execute-api", region)

    def sign(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> dict[str, str]:
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        self._auth.add_auth(request)
        return dict(request.headers.items())


def _url_region(base_url: str) -> str | None:
    match = API_GATEWAY_HOST.fullmatch(urllib.parse.urlsplit(base_url).hostname or "")
    return match.group(1) if match else None


def connect(
    api: str,
    *,
    sigv4: bool = False,
    region: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ApiClient:
    """A client for `api`, signing with SigV4 when asked or when the URL is API Gateway's."""
    parts = urllib.parse.urlsplit(api)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"--api {api!r} is not an http:// or https:// URL")
    if not (sigv4 or _url_region(api)):
        return ApiClient(api, BearerToken(token) if token else None, timeout)
    if token:
        raise CliError(
            "IOTCERT_TOKEN is set but this API is signed with SigV4; both use the Authorization "
            "header: unset IOTCERT_TOKEN"
        )
    return ApiClient(api, SigV4(api, region), timeout)


def certificate_path(fqdn: str, *rest: str) -> str:
    return "/".join(["/certificates", urllib.parse.quote(fqdn, safe=""), *rest])


class ApiClient:
    """The service's HTTP API. Every method raises ApiError for an error answer and CliError
    when the service cannot be reached."""

    def __init__(
        self,
        base_url: str,
        authorization: Authorization | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._authorization = authorization
        self._timeout = timeout

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        return json.loads(self.download(path, query))

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return json.loads(self._send("POST", self._url(path), json.dumps(body).encode(), {}))

    def delete(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        """DELETE with no body, still saying JSON (the API refuses an unsafe method that does
        not: the cross-site rule)."""
        headers = {"Content-Type": "application/json"}
        return json.loads(self._send("DELETE", self._url(path, query), None, headers))

    def download(
        self,
        path: str,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        return self._send("GET", self._url(path, query), None, dict(headers or {}))

    def _url(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        given = {name: value for name, value in (query or {}).items() if value is not None}
        return self.base_url + path + (f"?{urllib.parse.urlencode(given)}" if given else "")

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        # `*/*` first: API Gateway then hands binary downloads (DER CRL, PKCS#12) over as bytes.
        headers = {"Accept": "*/*", "User-Agent": "iotcert", **headers}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self._authorization is not None:
            headers = self._authorization.sign(method, url, headers, body)
        # The URL's scheme is http or https: connect() refuses any other.
        request = urllib.request.Request(url, data=body, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                return response.read()
        except urllib.error.HTTPError as err:
            raise _api_error(err.code, err.reason, err.read()) from err
        except urllib.error.URLError as err:
            raise CliError(self._unreachable(err.reason)) from err
        except OSError as err:  # a timeout or a reset while reading the answer
            raise CliError(self._unreachable(err)) from err

    def _unreachable(self, reason: object) -> str:
        message = f"cannot reach {self.base_url}: {_describe(reason, self._timeout)}"
        if urllib.parse.urlsplit(self.base_url).hostname in _LOCAL_HOSTS:
            message += "; is `make run` running?"
        return message


def _describe(reason: object, timeout: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed: {reason.reason or reason}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _api_error(status: int, reason: str, body: bytes) -> ApiError:
    """The service's `{"Code", "Message"}`; API Gateway's own `{"message"}`; else the text."""
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and (document.get("Message") or document.get("message")):
        message = document.get("Message") or document.get("message")
        return ApiError(status, document.get("Code"), str(message))
    text = body.decode("utf-8", errors="replace").strip()
    return ApiError(status, None, text[:500] or reason or "no message")

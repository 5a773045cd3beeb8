"""The ASGI adapter's own decisions, without a server: path decoding and body reading."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from chalicelib.asgi import BodyRefused, ClientGone, decode_path, read_body


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/certificates/example.com", "/certificates/example.com"),
        ("/certificates/ex%61mple%2Ecom/crl", "/certificates/example.com/crl"),
        ("/certificates/a%2Fb", "/certificates/a%2Fb"),  # would add a segment
        ("/certificates/a%3Fb", "/certificates/a%3Fb"),  # would start a query
        ("/certificates/a%23b", "/certificates/a%23b"),  # would start a fragment
        ("/certificates/a%3Bb", "/certificates/a%3Bb"),  # would start URL parameters
        ("/certificates/%0D", "/certificates/%0D"),  # would be dropped by the URL parser
        ("/certificates/a%2541", "/certificates/a%2541"),  # would be decoded twice
        ("/certificates/caf%C3%A9.example", "/certificates/café.example"),
    ],
)
def test_path_segments_are_decoded_unless_that_changes_the_route(raw: str, expected: str) -> None:
    assert decode_path(raw) == expected


def receiver(*messages: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    return receive


def read(headers: dict[str, str], *messages: dict[str, Any], limit: int = 10) -> bytes | None:
    return asyncio.run(read_body(headers, receiver(*messages), limit))


def test_a_body_in_pieces_is_joined() -> None:
    pieces = (
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"de", "more_body": False},
    )
    assert read({"content-length": "5"}, *pieces) == b"abcde"
    assert read({"transfer-encoding": "chunked"}, *pieces) == b"abcde"
    empty = {"type": "http.request", "body": b"", "more_body": False}
    assert read({"transfer-encoding": "chunked"}, empty) is None


def test_a_request_announcing_no_body_is_not_read() -> None:
    assert read({}) is None  # no message: reading would fail
    assert read({"content-length": "0"}) is None


def test_an_announced_size_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(BodyRefused) as refused:
        read({"content-length": "11"})  # no message: reading would fail

    status, _, body = refused.value.answer
    assert status == 413
    assert b"11 bytes is over the limit of 10" in body


def test_a_chunked_body_growing_over_the_limit_is_refused() -> None:
    pieces = [{"type": "http.request", "body": b"123456", "more_body": True}] * 2
    with pytest.raises(BodyRefused) as refused:
        read({"transfer-encoding": "chunked"}, *pieces)
    assert refused.value.answer[0] == 413


def test_a_client_gone_before_the_end_of_its_body_is_not_answered() -> None:
    with pytest.raises(ClientGone):
        read(
            {"content-length": "9"},
            {"type": "http.request", "body": b"abc", "more_body": True},
            {"type": "http.disconnect"},
        )

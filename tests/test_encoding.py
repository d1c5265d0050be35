"""Compressed answers: read like plain ones on both backends; a corrupt one is a typed error."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any, Literal

import httpx
import pytest
import respx

from cronofy_async import (
    APIConnectionError,
    APIError,
    AsyncSchedulerAPI,
    RateLimitError,
    ResponseFormatError,
    ServerError,
    ValidationError,
)

from .conftest import CREATE_URL, SECRET, SEED_RESPONSE, seed_request
from .helpers import http_response, raw_server

Backend = Literal["httpx", "aiohttp"]


@pytest.fixture(params=["httpx", "aiohttp"])
def backend(request: pytest.FixtureRequest) -> Backend:
    name: Backend = request.param
    return name


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(body)
    return zlib.compress(body)  # deflate: zlib-wrapped, as servers send it


CORRUPT = {"gzip": b"\x1f\x8b\x08\x00garbage-garbage-garbage", "deflate": b"garbage-garbage"}


def answering(status: int, body: bytes, **options: Any) -> Any:
    seen: list[bytes] = []

    async def answer(request: bytes) -> bytes:
        seen.append(request)
        return http_response(status, body, **options)

    answer.seen = seen  # type: ignore[attr-defined]
    return answer


def api_for(url: str, backend: Backend) -> AsyncSchedulerAPI:
    return AsyncSchedulerAPI(
        SECRET, base_url=url, http_backend=backend, rate_limit=None, retry=None
    )


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_success_is_read_like_a_plain_one(
    backend: Backend, encoding: str
) -> None:
    body = compress(SEED_RESPONSE.encode(), encoding)
    answer = answering(200, body, headers=[("Content-Encoding", encoding)])
    async with raw_server(answer) as url, api_for(url, backend) as api:
        created = await api.create_scheduler_request(seed_request())
    assert created.scheduler_request_id == "srq_5987234923847923"
    assert created.select_url == "https://app.cronofy.com/r/234ebnd"
    # Both backends say they accept it, so a server that compresses is within its rights.
    assert b"accept-encoding: gzip, deflate" in answer.seen[0].lower()


async def test_a_compressed_error_is_read_like_a_plain_one(backend: Backend) -> None:
    errors = {"errors": {"recipients.email": [{"key": "errors.invalid", "description": "bad"}]}}
    body = gzip.compress(json.dumps(errors).encode())
    answer = answering(422, body, headers=[("Content-Encoding", "gzip")])
    async with raw_server(answer) as url, api_for(url, backend) as api:
        with pytest.raises(ValidationError, match=r"recipients\.email: bad"):
            await api.create_scheduler_request(seed_request())


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_corrupt_compressed_success_is_a_format_error_that_may_have_created(
    backend: Backend, encoding: str
) -> None:
    body = CORRUPT[encoding]
    answer = answering(200, body, headers=[("Content-Encoding", encoding)])
    async with raw_server(answer) as url, api_for(url, backend) as api:
        with pytest.raises(ResponseFormatError) as info:
            await api.create_scheduler_request(seed_request())
    error = info.value
    assert error.outcome_unknown is True
    assert error.status_code == 200
    assert f"{encoding}-encoded body could not be decoded" in str(error)
    assert "probably processed" in str(error)


@pytest.mark.parametrize(
    ("status", "error"), [(429, RateLimitError), (500, ServerError), (422, ValidationError)]
)
async def test_a_corrupt_compressed_error_keeps_its_status(
    backend: Backend, status: int, error: type[Exception]
) -> None:
    answer = answering(
        status, b"\x1f\x8bgarbage", headers=[("Content-Encoding", "gzip"), ("Retry-After", "3")]
    )
    async with raw_server(answer) as url, api_for(url, backend) as api:
        with pytest.raises(error) as info:
            await api.create_scheduler_request(seed_request())
    assert getattr(info.value, "status_code", None) == status
    if status == 429:
        assert isinstance(info.value, RateLimitError)
        assert info.value.retry_after == 3


async def test_a_compressed_answer_cut_short_may_have_created(backend: Backend) -> None:
    body = gzip.compress(SEED_RESPONSE.encode())
    answer = answering(200, body[:20], headers=[("Content-Encoding", "gzip")], length=len(body))
    async with raw_server(answer) as url, api_for(url, backend) as api:
        with pytest.raises((APIConnectionError, ResponseFormatError)) as info:
            await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is True


async def test_a_corrupt_compressed_success_through_respx(mock: respx.MockRouter) -> None:
    # respx reads (and so decodes) the body itself, before the library sees a status: the
    # error is then a connection error, still typed, still saying the invite may exist.
    mock.post(CREATE_URL).mock(
        return_value=httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(CORRUPT["gzip"])
        )
    )
    async with AsyncSchedulerAPI(SECRET, rate_limit=None) as api:
        with pytest.raises(APIError) as info:
            await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is True
    assert isinstance(info.value.__cause__, httpx.DecodingError)


async def test_a_corrupt_compressed_success_through_a_callers_client() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, stream=httpx.ByteStream(CORRUPT["gzip"])
        )

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        AsyncSchedulerAPI(SECRET, rate_limit=None, http_client=client) as api,
    ):
        with pytest.raises(ResponseFormatError) as info:
            await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is True
    assert info.value.status_code == 200


async def test_a_compressed_answer_through_a_callers_client_over_the_aiohttp_transport() -> None:
    # The aiohttp transport under an httpx.AsyncClient hands the body over undecoded, as
    # httpx's own transport does, for the client to decode when it reads it.
    from cronofy_async._aiohttp import AiohttpTransport

    answer = answering(
        200, gzip.compress(SEED_RESPONSE.encode()), headers=[("Content-Encoding", "gzip")]
    )
    async with (
        raw_server(answer) as url,
        httpx.AsyncClient(transport=AiohttpTransport(limit=4)) as client,
        AsyncSchedulerAPI(SECRET, base_url=url, rate_limit=None, http_client=client) as api,
    ):
        created = await api.create_scheduler_request(seed_request())
    assert created.select_url == "https://app.cronofy.com/r/234ebnd"


async def test_an_encoding_neither_backend_decodes_is_a_format_error(backend: Backend) -> None:
    # Neither backend asks for br; a server that sends it anyway is read as it came, which is
    # not JSON: the invite was probably created, and the error says so.
    answer = answering(200, b"\x8b\x02\x80not-json", headers=[("Content-Encoding", "br")])
    async with raw_server(answer) as url, api_for(url, backend) as api:
        with pytest.raises(ResponseFormatError) as info:
            await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is True


def test_an_undecodable_success_of_a_read_says_nothing_was_changed() -> None:
    from cronofy_async._response import UndecodableBody, bodiless, error_from_undecodable

    request = httpx.Request("GET", "https://api.cronofy.com/v1/scheduler_requests/x")
    head = bodiless(200, [(b"content-encoding", b"gzip")], b"OK", request)
    error = error_from_undecodable(
        UndecodableBody(head, "gzip", httpx.DecodingError("bad", request=request)), mutates=False
    )
    assert isinstance(error, ResponseFormatError)
    assert error.outcome_unknown is False
    assert "probably processed" not in str(error)
    assert "content-encoding" not in error.response.headers


@pytest.mark.parametrize(
    "encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"]
)
def test_a_body_is_read_as_json_loads_reads_it(encoding: str) -> None:
    from cronofy_async._operation import loads

    content = SEED_RESPONSE.encode(encoding)
    assert loads(content) == json.loads(content)


async def test_a_utf16_answer_without_a_bom_still_parses() -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.post(CREATE_URL).mock(
            return_value=httpx.Response(
                200,
                content=SEED_RESPONSE.encode("utf-16-le"),
                headers={"content-type": "application/json"},
            )
        )
        async with AsyncSchedulerAPI(SECRET, rate_limit=None) as api:
            created = await api.create_scheduler_request(seed_request())
    assert created.scheduler_request_id == "srq_5987234923847923"


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1}',
        ' {"a": 1}',
        '{"a": 1}\n',
        '\r\n\t{"a": [1, 2.5, true, null, "\\u00e9"]}  ',
        "[]",
        '"x"',
        "3",
        '{"a":1} x',
        '{"a":1}{"b":2}',
        "",
        "   ",
        "{",
        "nope",
        '{"a": NaN}',
    ],
)
def test_a_body_with_any_surroundings_reads_as_json_loads_reads_it(text: str) -> None:
    from cronofy_async._operation import loads

    try:
        expected: object = json.loads(text)
    except ValueError as error:
        with pytest.raises(ValueError, match=str(error).split(":")[0]):
            loads(text.encode())
    else:
        assert loads(text.encode()) == expected


@pytest.mark.parametrize(
    "payload",
    [
        {"host": {"sub": "acc_1"}, "event": {"summary": "Driving lessons"}},
        {"text": 'caf\u00e9 \u2603 \U0001f600 "quoted" \\ \n\t\x00', "n": [1, -2.5, 1e300]},
        {"flags": [True, False, None], "empty": {}, "list": []},
        {"nested": {"a": [{"b": [{"c": "d"}]}]}},
        ["a", 1],
        "just text",
    ],
)
def test_a_body_is_encoded_byte_for_byte_as_json_dumps_would(payload: object) -> None:
    from cronofy_async._operation import json_body

    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert json_body(payload) == expected.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_body_with_nan_or_infinity_is_refused(value: float) -> None:
    from cronofy_async._operation import json_body

    with pytest.raises(ValueError, match="Out of range float"):
        json_body({"a": [value]})


def test_a_body_that_refers_to_itself_is_refused_with_a_value_error() -> None:
    from cronofy_async._operation import json_body

    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested too deeply, or refers to itself"):
        json_body({"extra": loop})


def test_a_body_that_is_not_json_is_refused_with_a_type_error() -> None:
    from cronofy_async._operation import json_body

    with pytest.raises(TypeError, match="not JSON serializable"):
        json_body({"when": object()})
    with pytest.raises(UnicodeEncodeError):
        json_body({"half": "\ud83d"})


DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize("body", [DEEP, b'{"scheduler_request": ' + DEEP + b"}"])
async def test_a_success_nested_too_deeply_to_read_is_a_format_error_that_may_have_created(
    backend: Backend, body: bytes
) -> None:
    answer = answering(200, body)
    async with raw_server(answer) as url, api_for(url, backend) as api:
        with pytest.raises(ResponseFormatError) as info:
            await api.create_scheduler_request(seed_request())
    assert info.value.outcome_unknown is True
    assert len(answer.seen) == 1


async def test_an_error_nested_too_deeply_to_read_is_still_the_statuss_error(
    backend: Backend,
) -> None:
    answer = answering(500, DEEP)
    async with raw_server(answer) as url, api_for(url, backend) as api:
        with pytest.raises(ServerError):
            await api.create_scheduler_request(seed_request())

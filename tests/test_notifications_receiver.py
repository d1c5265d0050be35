"""NotificationReceiver: in process, under a real ASGI server, and against a hostile sender."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import uvicorn

from cronofy_async import ConfigurationError
from cronofy_async.notifications import (
    DEFAULT_MAX_BODY_SIZE,
    HEADER,
    Notification,
    NotificationReceiver,
    signature_header,
)
from cronofy_async.testing._server import listening_socket

from .notification_samples import EMAIL, PHONE, SECRET, documented_body, encode

Message = MutableMapping[str, Any]


class Recorder:
    """A handler that remembers what it was given, and can be told to fail."""

    def __init__(self, error: Exception | None = None) -> None:
        self.seen: list[Notification] = []
        self.error = error

    async def __call__(self, notification: Notification) -> None:
        self.seen.append(notification)
        if self.error is not None:
            raise self.error


def signed(body: bytes, secret: Any = SECRET) -> dict[str, str]:
    return {HEADER: signature_header(body, secret), "Content-Type": "application/json"}


GOOD = encode(documented_body())


@attrs.frozen
class Reply:
    status: int | None
    headers: dict[bytes, bytes]
    body: bytes
    messages: list[Message]


async def call(
    app: NotificationReceiver,
    *,
    method: str = "POST",
    path: str = "/",
    headers: Iterable[tuple[bytes, bytes]] = (),
    chunks: Iterable[bytes] = (b"",),
    then: Message | None = None,
) -> Reply:
    """Drive `app` directly: `chunks` arrive as body messages, then `then` if given."""
    pending: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]
    if then is None:
        pending[-1]["more_body"] = False
    else:
        pending.append(then)
    sent: list[Message] = []

    async def receive() -> Message:
        if not pending:
            raise AssertionError("the app read past the end of the body")
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in headers],
    }
    await app(scope, receive, send)
    start = next((m for m in sent if m["type"] == "http.response.start"), None)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(
        status=None if start is None else start["status"],
        headers=dict(start["headers"]) if start else {},
        body=body,
        messages=sent,
    )


def raw_signed(body: bytes, secret: Any = SECRET) -> list[tuple[bytes, bytes]]:
    return [(HEADER.encode(), signature_header(body, secret).encode())]


# -- in process, through httpx ------------------------------------------------------------------


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def client(recorder: Recorder) -> httpx.AsyncClient:
    app = NotificationReceiver(SECRET, recorder)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")


async def test_a_genuine_notification_reaches_the_handler(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    response = await client.post("/cronofy", content=GOOD, headers=signed(GOOD))
    assert response.status_code == 200
    assert response.content == b""
    [notification] = recorder.seen
    assert notification.correlation_id == "foobar"
    assert notification.captured_data["phone_number"] == PHONE


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({HEADER: ""}, id="empty"),
        pytest.param({HEADER: " , "}, id="only-separators"),
        pytest.param({HEADER: "garbage"}, id="garbage"),
        pytest.param(signed(GOOD, "another_secret"), id="wrong-secret"),
        pytest.param(signed(GOOD + b" "), id="tampered"),
    ],
)
async def test_a_bad_signature_is_401_and_the_handler_is_never_called(
    client: httpx.AsyncClient, recorder: Recorder, headers: dict[str, str]
) -> None:
    response = await client.post("/", content=GOOD, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_signature"}
    assert recorder.seen == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b"[1, 2]", id="a-list"),
        pytest.param(b'{"notification": "\xff\xfe"}', id="not-utf-8"),
        pytest.param(encode({"other": 1}), id="no-notification"),
        pytest.param(encode(documented_body(triggered_at="garbage")), id="bad-triggered-at"),
        pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deeply-nested"),
    ],
)
async def test_a_signed_body_that_is_not_a_notification_is_400(
    client: httpx.AsyncClient, recorder: Recorder, body: bytes
) -> None:
    response = await client.post("/", content=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_notification"}
    assert recorder.seen == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def test_anything_but_a_post_is_405_with_allow(
    client: httpx.AsyncClient, recorder: Recorder, method: str
) -> None:
    response = await client.request(method, "/", headers=signed(GOOD))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert recorder.seen == []


async def test_a_handler_exception_is_500_without_details(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    app = NotificationReceiver(SECRET, Recorder(ValueError(f"no customer with {PHONE}")))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as c:
        response = await c.post("/", content=GOOD, headers=signed(GOOD))
    assert response.status_code == 500
    assert response.json() == {"error": "handler_failed"}
    [record] = [r for r in caplog.records if r.name == "cronofy_async.notifications"]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "ValueError raised at" in message
    assert "test_notifications_receiver.py" in message
    assert "srq_6789" in message
    assert "scheduling_request_time_chosen" in message
    assert record.exc_info is None
    assert PHONE not in caplog.text


class HandlerBaseError(BaseException):
    """A handler's own BaseException subclass."""


@pytest.mark.parametrize(
    "error",
    [
        asyncio.CancelledError(f"no customer with {PHONE}"),
        HandlerBaseError(f"no customer with {PHONE}"),
        GeneratorExit(f"no customer with {PHONE}"),
    ],
    ids=type,
)
async def test_a_handler_base_exception_is_500_without_details(
    caplog: pytest.LogCaptureFixture, error: BaseException
) -> None:
    # A CancelledError the handler raises while nobody cancels the receiver is its failure.
    caplog.set_level(logging.DEBUG)

    async def handler(notification: Notification) -> None:
        raise error

    reply = await call(
        NotificationReceiver(SECRET, handler), headers=raw_signed(GOOD), chunks=[GOOD]
    )
    assert reply.status == 500
    assert json.loads(reply.body) == {"error": "handler_failed"}
    [record] = [r for r in caplog.records if r.name == "cronofy_async.notifications"]
    assert f"{type(error).__qualname__} raised at" in record.getMessage()
    assert PHONE not in caplog.text


@pytest.mark.parametrize(
    ("error", "reraised", "args"),
    [
        (KeyboardInterrupt(f"no customer with {PHONE}"), KeyboardInterrupt, ()),
        (SystemExit(f"no customer with {PHONE}"), SystemExit, (1,)),
        (SystemExit(3), SystemExit, (3,)),
        (SystemExit(), SystemExit, (None,)),
    ],
    ids=repr,
)
async def test_a_handler_stopping_the_process_is_answered_500_then_re_raised_bare(
    caplog: pytest.LogCaptureFixture,
    error: BaseException,
    reraised: type[BaseException],
    args: tuple[object, ...],
) -> None:
    caplog.set_level(logging.DEBUG)

    def handler(notification: Notification) -> None:
        raise error

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": GOOD, "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw_signed(GOOD)}
    with pytest.raises(reraised) as caught:
        await NotificationReceiver(SECRET, handler)(scope, receive, send)
    assert sent[0]["status"] == 500
    # The server logs what escapes: the handler's message (personal data) must not.
    assert PHONE not in str(caught.value)
    assert caught.value.__suppress_context__
    assert caught.value.args == args
    assert PHONE not in caplog.text


async def test_cancelling_the_receiver_while_the_handler_runs_cancels_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    started = asyncio.Event()

    async def handler(notification: Notification) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(
        call(NotificationReceiver(SECRET, handler), headers=raw_signed(GOOD), chunks=[GOOD])
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "handler failed" not in caplog.text  # the server's shutdown, not the handler's fault


async def test_a_sync_handler_works_too() -> None:
    seen: list[str] = []
    app = NotificationReceiver(SECRET, lambda n: seen.append(n.type))
    reply = await call(app, headers=raw_signed(GOOD), chunks=[GOOD])
    assert reply.status == 200
    assert seen == ["scheduling_request_time_chosen"]


async def test_a_sync_handler_runs_in_a_thread_and_never_blocks_the_server() -> None:
    # A plain function may block (a database driver, requests): on the event loop it would
    # hold every other request. The second notification is answered while the first blocks.
    loop = asyncio.get_running_loop()
    first_blocking = asyncio.Event()
    release = threading.Event()
    threads: list[int] = []

    def handler(notification: Notification) -> None:
        threads.append(threading.get_ident())
        if len(threads) == 1:
            loop.call_soon_threadsafe(first_blocking.set)
            assert release.wait(10), "the loop never got to the second request"

    app = NotificationReceiver(SECRET, handler)
    first = asyncio.create_task(call(app, headers=raw_signed(GOOD), chunks=[GOOD]))
    await first_blocking.wait()
    second = await call(app, headers=raw_signed(GOOD), chunks=[GOOD])
    release.set()
    assert (second.status, (await first).status) == (200, 200)
    assert threading.get_ident() not in threads


async def test_async_handlers_stay_on_the_loop() -> None:
    threads: list[int] = []

    async def handler(notification: Notification) -> None:
        threads.append(threading.get_ident())

    class Handler:
        async def __call__(self, notification: Notification) -> None:
            threads.append(threading.get_ident())

    handlers: list[Callable[[Notification], Awaitable[None]]] = [
        handler,
        functools.partial(handler),
        Handler(),
    ]
    for each in handlers:
        reply = await call(
            NotificationReceiver(SECRET, each), headers=raw_signed(GOOD), chunks=[GOOD]
        )
        assert reply.status == 200
    assert threads == [threading.get_ident()] * 3


async def test_a_sync_handler_returning_an_awaitable_has_it_awaited() -> None:
    threads: list[int] = []

    async def later(notification: Notification) -> None:
        threads.append(threading.get_ident())

    app = NotificationReceiver(SECRET, lambda n: later(n))
    reply = await call(app, headers=raw_signed(GOOD), chunks=[GOOD])
    assert reply.status == 200
    assert threads == [threading.get_ident()]


async def test_a_sync_handler_that_raises_is_500() -> None:
    def handler(notification: Notification) -> None:
        raise KeyError(notification.correlation_id)

    reply = await call(
        NotificationReceiver(SECRET, handler), headers=raw_signed(GOOD), chunks=[GOOD]
    )
    assert reply.status == 500


async def test_any_path_works_so_it_mounts_anywhere(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder)
    for path in ["/", "/cronofy/notifications", "/a/b/c?x=1"]:
        reply = await call(app, path=path, headers=raw_signed(GOOD), chunks=[GOOD])
        assert reply.status == 200
    assert len(recorder.seen) == 3


async def test_rotation_on_both_sides() -> None:
    recorder = Recorder()
    app = NotificationReceiver(["new_secret", SECRET], recorder)
    old_and_new = raw_signed(GOOD, [SECRET, "cronofy_other"])
    assert (await call(app, headers=old_and_new, chunks=[GOOD])).status == 200
    only_new = raw_signed(GOOD, "new_secret")
    assert (await call(app, headers=only_new, chunks=[GOOD])).status == 200
    neither = raw_signed(GOOD, ["a", "b"])
    assert (await call(app, headers=neither, chunks=[GOOD])).status == 401
    assert len(recorder.seen) == 2


async def test_repeated_header_lines_are_one_list(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder)
    headers = [
        (HEADER.encode(), signature_header(GOOD, "old_secret").encode()),
        (b"CRONOFY-HMAC-SHA256", signature_header(GOOD, SECRET).encode()),
    ]
    assert (await call(app, headers=headers, chunks=[GOOD])).status == 200


# -- the body: read once, capped, timed ---------------------------------------------------------


async def test_the_body_arrives_in_chunks(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder)
    pieces = [GOOD[i : i + 7] for i in range(0, len(GOOD), 7)]
    assert (await call(app, headers=raw_signed(GOOD), chunks=pieces)).status == 200
    assert len(recorder.seen) == 1


async def test_a_declared_length_over_the_cap_is_413_before_reading(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder, max_body_size=100)
    headers = [*raw_signed(b"x" * 101), (b"content-length", b"101")]
    # Nothing to receive: reading would fail the test.
    reply = await call(app, headers=headers, chunks=[], then={"type": "never.read"})
    assert reply.status == 413
    assert json.loads(reply.body) == {"error": "body_too_large"}


async def test_a_body_over_the_cap_without_a_length_stops_at_the_cap(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder, max_body_size=100)
    chunks = [b"x" * 60, b"x" * 60]  # over the cap in the second chunk
    reply = await call(app, headers=raw_signed(b"x" * 120), chunks=chunks, then={"type": "x"})
    assert reply.status == 413
    assert recorder.seen == []


async def test_a_lying_content_length_does_not_lift_the_cap(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder, max_body_size=100)
    headers = [*raw_signed(b"x" * 500), (b"content-length", b"10")]
    reply = await call(app, headers=headers, chunks=[b"x" * 50] * 10)
    assert reply.status == 413
    assert recorder.seen == []


async def test_exactly_the_cap_is_read(recorder: Recorder) -> None:
    body = encode(documented_body())
    app = NotificationReceiver(SECRET, recorder, max_body_size=len(body))
    headers = [*raw_signed(body), (b"content-length", str(len(body)).encode())]
    assert (await call(app, headers=headers, chunks=[body])).status == 200


@pytest.mark.parametrize("value", [b"abc", b"-5", b"1e3", b""])
async def test_an_invalid_content_length_is_400(recorder: Recorder, value: bytes) -> None:
    app = NotificationReceiver(SECRET, recorder)
    headers = [*raw_signed(GOOD), (b"content-length", value)]
    reply = await call(app, headers=headers, chunks=[GOOD])
    assert reply.status == 400
    assert json.loads(reply.body) == {"error": "invalid_content_length"}


async def test_two_different_content_lengths_are_400(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder)
    length = str(len(GOOD)).encode()
    headers = [*raw_signed(GOOD), (b"content-length", length), (b"content-length", b"5")]
    assert (await call(app, headers=headers, chunks=[GOOD])).status == 400
    same = [*raw_signed(GOOD), (b"content-length", length), (b"content-length", length)]
    assert (await call(app, headers=same, chunks=[GOOD])).status == 200


async def test_a_sender_that_disconnects_gets_no_answer_and_no_handler(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder)
    reply = await call(
        app, headers=raw_signed(GOOD), chunks=[GOOD[:10]], then={"type": "http.disconnect"}
    )
    assert reply.messages == []
    assert recorder.seen == []


@pytest.mark.real_time  # asyncio.timeout on the loop's clock: 20 ms
async def test_a_body_slower_than_the_timeout_is_408(recorder: Recorder) -> None:
    app = NotificationReceiver(SECRET, recorder, body_timeout=0.02)
    forever = asyncio.Event()

    async def receive() -> Message:
        await forever.wait()
        raise AssertionError("unreachable")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw_signed(GOOD)}
    await app(scope, receive, send)
    assert sent[0]["status"] == 408
    assert recorder.seen == []


# -- the lifespan, configuration, logging -------------------------------------------------------


async def test_it_answers_the_lifespan_so_it_runs_as_a_whole_app() -> None:
    app = NotificationReceiver(SECRET, Recorder())
    inbox = [
        {"type": "lifespan.startup"},
        {"type": "lifespan.something_new"},  # ignored, as servers may add messages
        {"type": "lifespan.shutdown"},
    ]
    outbox: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        outbox.append(message)

    await app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in outbox] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_a_websocket_is_left_to_the_server() -> None:
    async def receive() -> Message:
        raise AssertionError("not read")

    async def send(message: Message) -> None:
        raise AssertionError("not answered")

    await NotificationReceiver(SECRET, Recorder())({"type": "websocket"}, receive, send)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"secret": ""}, "non-empty client secret"),
        ({"secret": [SECRET, None]}, "non-empty client secret"),
        ({"handler": "not callable"}, "handler must be callable"),
        ({"max_body_size": 0}, "at least 1 byte"),
        ({"max_body_size": 1.5}, "must be an int"),
        ({"max_body_size": True}, "must be an int"),
        ({"body_timeout": 0}, "body_timeout"),
        ({"body_timeout": -1.0}, "body_timeout"),
    ],
)
def test_bad_configuration(options: dict[str, Any], fragment: str) -> None:
    arguments: dict[str, Any] = {"secret": SECRET, "handler": Recorder(), **options}
    with pytest.raises(ConfigurationError, match=fragment) as info:
        NotificationReceiver(arguments.pop("secret"), arguments.pop("handler"), **arguments)
    assert SECRET not in str(info.value)


def test_the_repr_hides_the_secret() -> None:
    async def on_notification(notification: Notification) -> None: ...

    app = NotificationReceiver([SECRET, "second"], on_notification)
    assert SECRET not in repr(app)
    assert "second" not in repr(app)
    assert "on_notification" in repr(app)
    assert "secrets=2" in repr(app)
    assert "handler=Recorder" in repr(NotificationReceiver(SECRET, Recorder()))
    assert app.max_body_size == DEFAULT_MAX_BODY_SIZE


async def test_nothing_logged_shows_the_secret_or_personal_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    failing = NotificationReceiver(SECRET, Recorder(RuntimeError(f"{EMAIL} {PHONE}")))
    capped = NotificationReceiver(SECRET, Recorder(), max_body_size=50)
    bad_time = encode(documented_body(triggered_at=f"{PHONE} {EMAIL}"))
    bad_type = encode(documented_body(type=[EMAIL]))
    not_json = f'{{"x": "{EMAIL}" {PHONE}'.encode()
    replies = [
        await call(failing, headers=raw_signed(GOOD), chunks=[GOOD]),
        await call(failing, headers=raw_signed(GOOD, "wrong"), chunks=[GOOD]),
        await call(failing, headers=raw_signed(bad_time), chunks=[bad_time]),
        await call(failing, headers=raw_signed(bad_type), chunks=[bad_type]),
        await call(failing, headers=raw_signed(not_json), chunks=[not_json]),
        await call(failing, headers=[], chunks=[GOOD]),
        await call(capped, headers=raw_signed(GOOD), chunks=[GOOD]),
        await call(failing, method="GET"),
    ]
    assert [r.status for r in replies] == [500, 401, 400, 400, 400, 401, 413, 405]
    assert len(caplog.records) >= 7
    for secret_or_personal in [SECRET, EMAIL, PHONE, "DeLorean", "Marty"]:
        assert secret_or_personal not in caplog.text
        for reply in replies:
            assert secret_or_personal.encode() not in reply.body


# -- under a real ASGI server (uvicorn on 127.0.0.1) --------------------------------------------


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[str]:
    """`app` under uvicorn with its lifespan on, on a free loopback port; yields the URL."""
    sock = listening_socket("127.0.0.1", 0)
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, access_log=False, log_level="warning", **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("the server stopped during startup")
            await asyncio.sleep(0.005)
        host, port = sock.getsockname()[:2]
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_under_uvicorn(http: str) -> None:
    recorder = Recorder()
    app = NotificationReceiver(SECRET, recorder, max_body_size=4096)
    async with serving(app, http=http) as url, httpx.AsyncClient(base_url=url) as client:
        ok = await client.post("/hooks/cronofy", content=GOOD, headers=signed(GOOD))
        forged = await client.post("/", content=GOOD, headers=signed(GOOD, "guess"))
        unsigned = await client.post("/", content=GOOD)
        garbage = b"\x00\xffnot json"
        unparseable = await client.post("/", content=garbage, headers=signed(garbage))
        get = await client.get("/")
        huge = b"x" * 10_000
        too_big = await client.post("/", content=huge, headers=signed(huge))

    assert ok.status_code == 200
    assert forged.status_code == 401
    assert unsigned.status_code == 401
    assert unparseable.status_code == 400
    assert (get.status_code, get.headers["allow"]) == (405, "POST")
    assert too_big.status_code == 413
    assert [n.correlation_id for n in recorder.seen] == ["foobar"]


async def test_under_uvicorn_a_handler_failure_is_500() -> None:
    app = NotificationReceiver(SECRET, Recorder(RuntimeError("boom")))
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post("/", content=GOOD, headers=signed(GOOD))
    assert response.status_code == 500


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_under_uvicorn_a_chunked_body_without_length_stops_at_the_cap(http: str) -> None:
    recorder = Recorder()
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(10_000):  # 640 MB if nobody stopped reading
            sent += 1
            yield b"x" * 65536

    app = NotificationReceiver(SECRET, recorder, max_body_size=100_000)
    async with serving(app, http=http) as url, httpx.AsyncClient(base_url=url) as client:
        try:
            response = await client.post(
                "/", content=endless(), headers={HEADER: signature_header(b"x", SECRET)}
            )
        except httpx.TransportError:
            status = None  # the server may close while the client still writes
        else:
            status = response.status_code
            assert "content-length" not in response.request.headers
    assert status in (413, None)
    assert sent < 500  # the server closed the connection: a few socket buffers, not 640 MB
    assert recorder.seen == []


async def raw_exchange(url: str, request: bytes, *, then_close: bool = False) -> bytes:
    """Write `request` bytes to the server as they are, and read its answer to the end."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        if then_close:
            writer.write_eof()
        return await reader.read(65536)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def http_request(body: bytes, *, length: int | None, signature: bytes) -> bytes:
    lines = [
        b"POST / HTTP/1.1",
        b"Host: bot",
        b"Connection: close",
        HEADER.encode() + b": " + signature,
    ]
    if length is not None:
        lines.append(b"Content-Length: " + str(length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_under_uvicorn_a_declared_length_over_the_cap_is_refused_unread(http: str) -> None:
    recorder = Recorder()
    app = NotificationReceiver(SECRET, recorder, max_body_size=1000)
    signature = signature_header(GOOD, SECRET).encode()
    async with serving(app, http=http) as url:
        answer = await raw_exchange(url, http_request(b"", length=10**9, signature=signature))
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert recorder.seen == []


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_under_uvicorn_a_lying_short_length_reads_only_that_much(http: str) -> None:
    # Content-Length: 10, then the whole body: the server frames 10 bytes as the body, which
    # the signature (of the whole body) does not match.
    recorder = Recorder()
    app = NotificationReceiver(SECRET, recorder)
    signature = signature_header(GOOD, SECRET).encode()
    async with serving(app, http=http) as url:
        answer = await raw_exchange(url, http_request(GOOD, length=10, signature=signature))
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert recorder.seen == []


@pytest.mark.parametrize("http", ["h11", "httptools"])
async def test_under_uvicorn_a_body_cut_short_never_reaches_the_handler(http: str) -> None:
    recorder = Recorder()
    app = NotificationReceiver(SECRET, recorder)
    signature = signature_header(GOOD, SECRET).encode()
    request = http_request(GOOD[:20], length=len(GOOD), signature=signature)
    async with serving(app, http=http) as url:
        answer = await raw_exchange(url, request, then_close=True)
    assert b" 200 " not in answer
    assert recorder.seen == []


@pytest.mark.real_time  # a slow sender against a real server: waits 0.2 s for real
async def test_under_uvicorn_a_slow_body_is_408() -> None:
    recorder = Recorder()
    app = NotificationReceiver(SECRET, recorder, body_timeout=0.2)
    signature = signature_header(GOOD, SECRET).encode()
    request = http_request(GOOD[:20], length=len(GOOD), signature=signature)
    async with serving(app) as url:
        answer = await raw_exchange(url, request)  # the rest never comes
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert recorder.seen == []


async def test_under_uvicorn_mounted_under_a_path_in_a_plain_asgi_router() -> None:
    recorder = Recorder()
    receiver = NotificationReceiver(SECRET, recorder)
    prefix = "/cronofy/notifications"

    async def router(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan" or scope["path"].startswith(prefix):
            if scope["type"] == "http":
                scope = {**scope, "root_path": prefix, "path": scope["path"][len(prefix) :]}
            await receiver(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serving(router) as url, httpx.AsyncClient(base_url=url) as client:
        mounted = await client.post(prefix, content=GOOD, headers=signed(GOOD))
        elsewhere = await client.post("/other", content=GOOD, headers=signed(GOOD))
    assert (mounted.status_code, elsewhere.status_code) == (200, 404)
    assert len(recorder.seen) == 1


async def test_mounted_in_starlette() -> None:
    from starlette import applications, routing

    recorder = Recorder()
    mount = routing.Mount("/cronofy", app=NotificationReceiver(SECRET, recorder))
    web = applications.Starlette(routes=[mount])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://x") as c:
        response = await c.post("/cronofy/notifications", content=GOOD, headers=signed(GOOD))
    assert response.status_code == 200
    assert len(recorder.seen) == 1


def documented_framework_block() -> str:
    """The docs' block that puts the receiver into a Starlette app."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "notifications.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "starlette" in b]
    return str(block)


async def test_the_documented_starlette_form_answers_on_the_exact_url() -> None:
    # Cronofy POSTs to the URL as registered, with no trailing slash: a Starlette Mount there
    # answers 307 and the notification never reaches the receiver.
    from starlette import applications

    recorder = Recorder()
    scope: dict[str, Any] = {"secret": SECRET, "on_notification": recorder}
    scope["NotificationReceiver"] = NotificationReceiver
    exec(documented_framework_block(), scope)  # noqa: S102 - our own docs
    web = applications.Starlette(routes=scope["routes"])
    transport = httpx.ASGITransport(app=web)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as c:
        response = await c.post("/cronofy/notifications", content=GOOD, headers=signed(GOOD))
        wrong = await c.get("/cronofy/notifications")
    assert response.status_code == 200
    assert wrong.status_code == 405  # the receiver's own answer, not the router's
    assert len(recorder.seen) == 1

"""Push notifications, the pure parts: signatures, parsing, link metadata."""

from __future__ import annotations

import base64
import doctest
import hmac
import inspect
import json
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import TracebackType
from typing import Any

import pytest

import cronofy_async
from cronofy_async import ConfigurationError, CronofyError, NotificationError, PayloadError
from cronofy_async._secret import ClientSecret
from cronofy_async.notifications import (
    TIME_CHOSEN,
    Notification,
    _links,
    _notification,
    _receiver,
    _signature,
    add_link_metadata,
    parse_notification,
    signature_header,
    verify_signature,
)

from .notification_samples import (
    EMAIL,
    PHONE,
    VECTOR_BODY,
    VECTOR_HEADER,
    VECTOR_SECRET,
    documented_body,
    encode,
)

# -- verify_signature ---------------------------------------------------------------------------


def test_the_docs_test_vector_verifies() -> None:
    assert verify_signature(VECTOR_BODY, VECTOR_HEADER, VECTOR_SECRET)
    assert signature_header(VECTOR_BODY, VECTOR_SECRET) == VECTOR_HEADER


def test_bytes_likes_and_a_bytes_header_verify_too() -> None:
    assert verify_signature(bytearray(VECTOR_BODY), VECTOR_HEADER, VECTOR_SECRET)
    assert verify_signature(memoryview(VECTOR_BODY), VECTOR_HEADER.encode(), VECTOR_SECRET)
    assert verify_signature(VECTOR_BODY, VECTOR_HEADER, ClientSecret(VECTOR_SECRET))


@pytest.mark.parametrize(
    ("body", "header", "secret"),
    [
        pytest.param(b'{"example":"well-known "}', VECTOR_HEADER, VECTOR_SECRET, id="tampered"),
        pytest.param(b'{"example": "well-known"}', VECTOR_HEADER, VECTOR_SECRET, id="reformatted"),
        pytest.param(VECTOR_BODY, VECTOR_HEADER, VECTOR_SECRET + "x", id="wrong-secret"),
        pytest.param(VECTOR_BODY, None, VECTOR_SECRET, id="missing"),
        pytest.param(VECTOR_BODY, "", VECTOR_SECRET, id="empty"),
        pytest.param(VECTOR_BODY, "garbage", VECTOR_SECRET, id="garbage"),
        pytest.param(VECTOR_BODY, "!!!!", VECTOR_SECRET, id="not-base64"),
        pytest.param(VECTOR_BODY, VECTOR_HEADER.rstrip("="), VECTOR_SECRET, id="unpadded"),
        pytest.param(VECTOR_BODY, VECTOR_HEADER[:-4] + "AAA=", VECTOR_SECRET, id="one-char-off"),
        pytest.param(VECTOR_BODY, base64.b64encode(b"x" * 32).decode(), VECTOR_SECRET, id="32"),
        pytest.param(VECTOR_BODY, base64.b64encode(b"x" * 31).decode(), VECTOR_SECRET, id="short"),
        pytest.param(VECTOR_BODY, VECTOR_HEADER + "AAAA", VECTOR_SECRET, id="long"),
        pytest.param(VECTOR_BODY, ",,, ,", VECTOR_SECRET, id="empty-entries"),
        pytest.param(VECTOR_BODY, "5Dxént" + VECTOR_HEADER[6:], VECTOR_SECRET, id="non-ascii"),
        pytest.param(VECTOR_BODY, b"\xff\xfe", VECTOR_SECRET, id="non-ascii-bytes"),
        pytest.param(VECTOR_BODY, "5Dxe nt" + VECTOR_HEADER[6:], VECTOR_SECRET, id="inner-space"),
        pytest.param(VECTOR_BODY, "sha256=" + VECTOR_HEADER, VECTOR_SECRET, id="prefixed"),
        pytest.param(VECTOR_BODY, VECTOR_HEADER.lower(), VECTOR_SECRET, id="case-changed"),
        pytest.param(VECTOR_BODY, 42, VECTOR_SECRET, id="not-a-string"),
        pytest.param(VECTOR_BODY, ("," * 5000) + VECTOR_HEADER, VECTOR_SECRET, id="huge"),
    ],
)
def test_a_bad_signature_is_simply_invalid(body: bytes, header: Any, secret: str) -> None:
    assert verify_signature(body, header, secret) is False


@pytest.mark.parametrize(
    "header",
    [
        f"{VECTOR_HEADER},{signature_header(VECTOR_BODY, 'old')}",
        f"{signature_header(VECTOR_BODY, 'old')},{VECTOR_HEADER}",
        f"  garbage , {VECTOR_HEADER} ,",
        f",,{VECTOR_HEADER}",
        f"\t{VECTOR_HEADER}\t",
    ],
)
def test_a_rotated_header_with_one_good_entry_passes(header: str) -> None:
    assert verify_signature(VECTOR_BODY, header, VECTOR_SECRET)


def test_several_secrets_on_our_side_any_one_matches() -> None:
    assert verify_signature(VECTOR_BODY, VECTOR_HEADER, ["new_secret", VECTOR_SECRET])
    assert verify_signature(VECTOR_BODY, VECTOR_HEADER, (s for s in ["x", VECTOR_SECRET]))
    assert not verify_signature(VECTOR_BODY, VECTOR_HEADER, ["new_secret", "other"])


def test_signature_header_signs_with_every_secret_in_order() -> None:
    header = signature_header(VECTOR_BODY, [VECTOR_SECRET, "old"])
    first, second = header.split(",")
    assert first == VECTOR_HEADER
    digest = hmac.digest(b"old", VECTOR_BODY, "sha256")
    assert second == base64.b64encode(digest).decode()
    assert verify_signature(VECTOR_BODY, header, "old")


def test_a_secret_read_from_a_file_is_stripped_like_the_clients() -> None:
    assert verify_signature(VECTOR_BODY, VECTOR_HEADER, VECTOR_SECRET + "\n")


@pytest.mark.parametrize(
    "secret",
    [None, "", "   ", [], ["ok", ""], ["ok", 42], 42, b"bytes", ClientSecret(""), [None]],
    ids=repr,
)
def test_a_bad_secret_is_a_configuration_error(secret: Any) -> None:
    with pytest.raises(ConfigurationError, match="non-empty client secret"):
        verify_signature(VECTOR_BODY, VECTOR_HEADER, secret)
    with pytest.raises(ConfigurationError):
        signature_header(VECTOR_BODY, secret)


@pytest.mark.parametrize("body", ['{"example":"well-known"}', None, 42])
def test_a_body_that_is_not_bytes_is_a_type_error(body: Any) -> None:
    with pytest.raises(TypeError, match="raw request body as bytes"):
        verify_signature(body, VECTOR_HEADER, VECTOR_SECRET)
    with pytest.raises(TypeError, match="raw request body as bytes"):
        signature_header(body, VECTOR_SECRET)


def _frames(tb: TracebackType | None) -> Iterator[Any]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _leaks(error: BaseException, secret: str, *, skip: object) -> list[str]:
    """Names of traceback locals whose repr shows `secret` (skipping the test's own frame)."""
    found = []
    for frame in _frames(error.__traceback__):
        if frame is skip:
            continue
        for name, value in frame.f_locals.items():
            shown = repr(value)
            if secret in shown or repr(secret.encode()) in shown:
                found.append(f"{frame.f_code.co_name}.{name}")
    return found


def test_no_secret_in_traceback_locals_when_verification_raises_inside(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(a: bytes, b: bytes) -> bool:
        raise RuntimeError("compare failed")

    monkeypatch.setattr(hmac, "compare_digest", broken)
    with pytest.raises(RuntimeError) as info:
        verify_signature(VECTOR_BODY, VECTOR_HEADER, [VECTOR_SECRET, "other_secret_value"])
    here = sys._getframe()
    assert _leaks(info.value, VECTOR_SECRET, skip=here) == []
    assert _leaks(info.value, "other_secret_value", skip=here) == []
    # As pytest --showlocals or an error tracker shows it, from below this test's frame.
    below = info.value.__traceback__.tb_next if info.value.__traceback__ else None
    shown = "".join(
        traceback.TracebackException(
            type(info.value), info.value, below, capture_locals=True
        ).format()
    )
    assert "verify_signature" in shown
    assert VECTOR_SECRET not in shown
    assert "other_secret_value" not in shown


def test_no_secret_in_traceback_locals_when_the_body_is_wrong() -> None:
    with pytest.raises(TypeError) as info:
        verify_signature("text", VECTOR_HEADER, VECTOR_SECRET)  # type: ignore[arg-type]
    assert _leaks(info.value, VECTOR_SECRET, skip=sys._getframe()) == []


def test_a_view_that_is_not_contiguous_is_signed_not_raised_on() -> None:
    # Hashing one raises BufferError inside hmac.digest, whose frame holds the key as bytes.
    view = memoryview(b"abcd")[::2]
    assert signature_header(view, VECTOR_SECRET) == signature_header(b"ac", VECTOR_SECRET)
    assert verify_signature(view, signature_header(b"ac", VECTOR_SECRET), VECTOR_SECRET)


def test_no_secret_in_traceback_locals_when_one_of_several_secrets_is_bad() -> None:
    with pytest.raises(ConfigurationError) as info:
        verify_signature(VECTOR_BODY, VECTOR_HEADER, [VECTOR_SECRET, 42])  # type: ignore[list-item]
    assert _leaks(info.value, VECTOR_SECRET, skip=sys._getframe()) == []
    assert VECTOR_SECRET not in str(info.value)


def test_an_odd_secret_never_makes_signing_raise() -> None:
    # A lone surrogate cannot be UTF-8 encoded strictly; the exception would carry the secret.
    odd = "sk_\ud800_secret"
    header = signature_header(b"{}", odd)
    assert verify_signature(b"{}", header, odd)


# -- parse_notification -------------------------------------------------------------------------


def test_parses_the_documented_body() -> None:
    body = documented_body()
    notification = parse_notification(encode(body))
    assert notification.type == TIME_CHOSEN == "scheduling_request_time_chosen"
    assert notification.triggered_at == datetime(2025, 1, 19, 16, 14, 11, tzinfo=UTC)
    assert notification.correlation_id == "foobar"
    assert dict(notification.utm) == {
        "utm_medium": "email",
        "utm_source": "newsletter",
        "utm_campaign": "spring",
    }
    assert dict(notification.captured_data) == {
        "phone_number": PHONE,
        "notes": "Bring the DeLorean",
    }
    assert notification.raw == body
    request = notification.scheduling_request
    assert request is not None
    assert request.scheduling_request_id == "srq_6789"
    assert request.slot_selection == "complete"
    assert request.duration_minutes == 30
    assert request.recipients[0].email == EMAIL
    assert request.recipient_operations is not None
    assert request.recipient_operations.reschedule_url == "https://app.cronofy.com/rs/1"


def test_the_repr_leaves_out_what_people_typed() -> None:
    notification = parse_notification(encode(documented_body()))
    shown = repr(notification)
    assert PHONE not in shown
    assert EMAIL not in shown
    assert "DeLorean" not in shown
    assert shown == (
        "Notification(type='scheduling_request_time_chosen', "
        "triggered_at=datetime.datetime(2025, 1, 19, 16, 14, 11, tzinfo=datetime.timezone.utc), "
        "scheduling_request_id='srq_6789', correlation_id='foobar', utm={'utm_medium': 'email', "
        "'utm_source': 'newsletter', 'utm_campaign': 'spring'})"
    )
    bare = parse_notification(b'{"notification": {"type": "x", "triggered_at": "2025-01-19"}}')
    assert "scheduling_request_id=None" in repr(bare)


def test_an_unknown_type_is_kept_and_a_bare_notification_parses() -> None:
    body = {"notification": {"type": "something_new", "triggered_at": "2025-01-19T16:14:11Z"}}
    notification = parse_notification(json.dumps(body))
    assert notification == Notification(
        type="something_new", triggered_at=datetime(2025, 1, 19, 16, 14, 11, tzinfo=UTC)
    )
    assert notification.scheduling_request is None
    assert notification.correlation_id is None
    assert dict(notification.utm) == {} == dict(notification.captured_data)


@pytest.mark.parametrize(
    ("metadata", "correlation_id", "utm", "captured"),
    [
        ({}, None, {}, {}),
        ({"correlation_id": None, "utm_source": None}, None, {}, {}),
        ({"captured_data.": "x", "other": 1}, None, {}, {"": "x"}),
        ({"captured_data.count": 3}, None, {}, {"count": 3}),
    ],
)
def test_scheduler_metadata_is_read_tolerantly(
    metadata: dict[str, Any], correlation_id: str | None, utm: Any, captured: Any
) -> None:
    body = documented_body()
    body["scheduling_request"]["event"]["metadata"]["scheduler"] = metadata
    notification = parse_notification(encode(body))
    assert notification.correlation_id == correlation_id
    assert dict(notification.utm) == utm
    assert dict(notification.captured_data) == captured


@pytest.mark.parametrize("where", ["event", "metadata", "scheduler"])
def test_absent_metadata_is_empty(where: str) -> None:
    body = documented_body()
    request = body["scheduling_request"]
    if where == "event":
        del request["event"]
    elif where == "metadata":
        del request["event"]["metadata"]
    else:
        del request["event"]["metadata"]["scheduler"]
    notification = parse_notification(encode(body))
    assert notification.correlation_id is None
    assert dict(notification.captured_data) == {}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-01-19T16:14:11Z", datetime(2025, 1, 19, 16, 14, 11, tzinfo=UTC)),
        ("2025-01-19T16:14:11.250Z", datetime(2025, 1, 19, 16, 14, 11, 250000, tzinfo=UTC)),
        (
            "2025-01-19T17:14:11+01:00",
            datetime(2025, 1, 19, 17, 14, 11, tzinfo=timezone(timedelta(hours=1))),
        ),
        # Cronofy gives every time in UTC: one without an offset is read as UTC, never local.
        ("2025-01-19T16:14:11", datetime(2025, 1, 19, 16, 14, 11, tzinfo=UTC)),
    ],
)
def test_triggered_at_is_always_aware(value: str, expected: datetime) -> None:
    notification = parse_notification(encode(documented_body(triggered_at=value)))
    assert notification.triggered_at == expected
    assert notification.triggered_at.tzinfo is not None


AT = "2025-01-19T16:14:11Z"


def note(**fields: Any) -> dict[str, Any]:
    return {"notification": fields}


def _error(body: Any) -> NotificationError:
    raw = body if isinstance(body, bytes) else encode(body)
    with pytest.raises(NotificationError) as info:
        parse_notification(raw)
    return info.value


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (b"", "body", "not valid JSON"),
        (b"{not json", "body", "not valid JSON (Expecting property name"),
        (b'{"a": 1} trailing', "body", "Extra data at line 1 column 10"),
        (b"\xff\xfe\xfd not utf-8", "body", "not valid JSON"),
        (b'{"notification": "\xe9"}', "body", "not utf-8 at byte 18"),
        (b"[" * 100_000 + b"]" * 100_000, "body", "too deep"),
        (b"1" * 5000, "body", "too long a number"),
        ([], "body", "expected an object, got a list"),
        ("text", "body", "expected an object, got a string"),
        (None, "body", "expected an object, got null"),
        ({}, "notification", "missing"),
        ({"notification": None}, "notification", "missing"),
        ({"notification": []}, "notification", "expected an object, got a list"),
        ({"notification": 5}, "notification", "expected an object, got int"),
        (note(triggered_at=AT), "notification.type", "missing"),
        (note(type="", triggered_at=AT), "notification.type", "missing"),
        (note(type=1, triggered_at=AT), "notification.type", "got int"),
        (note(type="x"), "notification.triggered_at", "missing"),
        (note(type="x", triggered_at="yesterday"), "notification.triggered_at", "not an ISO 8601"),
        (note(type="x", triggered_at=""), "notification.triggered_at", "not an ISO 8601"),
        (note(type="x", triggered_at=1737303251), "notification.triggered_at", "got int"),
        (note(type="x", triggered_at="2025-13-40T99:00:00Z"), "notification.triggered_at", "ISO"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_named(body: Any, path: str, fragment: str) -> None:
    error = _error(body)
    assert error.path == path
    assert str(error).startswith(f"{path}: ")
    assert fragment in str(error)
    assert isinstance(error, CronofyError)
    assert isinstance(error, ValueError)
    assert error.__cause__ is None  # a UnicodeDecodeError would carry the whole body


SR = "scheduling_request"
SCHEDULER = f"{SR}.event.metadata.scheduler"


def scheduler(request: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = request["event"]["metadata"]["scheduler"]
    return found


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (lambda r: r.update(scheduling_request_id=None), f"{SR}.scheduling_request_id"),
        (lambda r: r.update(duration={"minutes": "30"}), f"{SR}.duration.minutes"),
        (lambda r: r.update(recipients="x"), f"{SR}.recipients"),
        (lambda r: r["event"].update(metadata=[]), f"{SR}.event.metadata"),
        (lambda r: r["event"]["metadata"].update(scheduler="x"), SCHEDULER),
        (lambda r: scheduler(r).update(correlation_id=7), f"{SCHEDULER}.correlation_id"),
        (lambda r: scheduler(r).update(utm_source=["a"]), f"{SCHEDULER}.utm_source"),
    ],
)  # fmt: skip
def test_a_malformed_documented_field_is_named(change: Any, path: str) -> None:
    body = documented_body()
    change(body["scheduling_request"])
    assert _error(body).path == path


def test_a_scheduling_request_that_is_not_an_object_is_named() -> None:
    body = documented_body()
    body["scheduling_request"] = ["srq_1"]
    assert _error(body).path == "scheduling_request"


def test_error_messages_never_quote_the_body() -> None:
    private = "marty-private-value"
    bodies = [
        {"notification": {"type": "x", "triggered_at": private}},
        {"notification": {"type": [private], "triggered_at": "2025-01-19T16:14:11Z"}},
        {"notification": private},
        b'{"notification": {"type": "' + private.encode() + b'"',
        b'{"notification": "' + private.encode() + b'\xff"}',
    ]
    for body in bodies:
        assert private not in str(_error(body))


def test_a_body_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="bytes or str"):
        parse_notification(42)  # type: ignore[arg-type]


def test_a_memoryview_body_parses() -> None:
    notification = parse_notification(memoryview(encode(documented_body())))
    assert notification.correlation_id == "foobar"


# -- add_link_metadata --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "options", "expected"),
    [
        ("https://app.cronofy.com/r/abc", {}, "https://app.cronofy.com/r/abc"),
        (
            "https://app.cronofy.com/r/abc",
            {"correlation_id": "order-42"},
            "https://app.cronofy.com/r/abc?correlation_id=order-42",
        ),
        (
            "https://app.cronofy.com/r/abc?lang=en#top",
            {"correlation_id": "a b/é&=?", "utm_source": "bot"},
            "https://app.cronofy.com/r/abc?lang=en&correlation_id=a%20b%2F%C3%A9%26%3D%3F"
            "&utm_source=bot#top",
        ),
        (
            "https://app.cronofy.com/r/abc?correlation_id=old&x=%20y&utm_source=keep",
            {"correlation_id": "new"},
            "https://app.cronofy.com/r/abc?x=%20y&utm_source=keep&correlation_id=new",
        ),
        (
            "http://localhost/r/abc?",
            {
                "utm_medium": "m",
                "utm_campaign": "c",
                "utm_term": "t",
                "utm_content": "x",
            },
            "http://localhost/r/abc?utm_medium=m&utm_campaign=c&utm_term=t&utm_content=x",
        ),
    ],
)
def test_add_link_metadata(url: str, options: dict[str, str], expected: str) -> None:
    assert add_link_metadata(url, **options) == expected


def test_link_metadata_round_trips_through_a_query_parser() -> None:
    import urllib.parse

    value = "x" * 127 + "é"
    url = add_link_metadata("https://app.cronofy.com/r/abc?a=1", correlation_id=value)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query == {"a": "1", "correlation_id": value}


@pytest.mark.parametrize(
    ("url", "options", "field", "fragment"),
    [
        ("https://x/r", {"correlation_id": "x" * 129}, "correlation_id", "129 characters"),
        ("https://x/r", {"utm_term": "x" * 1000}, "utm_term", "at most 128"),
        ("https://x/r", {"utm_source": ""}, "utm_source", "must not be empty"),
        ("https://x/r", {"correlation_id": 42}, "correlation_id", "got int"),
        ("https://x/r", {"correlation_id": "\ud800"}, "correlation_id", "lone surrogate at 0"),
        ("https://x/r", {"utm_content": "ab\udfff"}, "utm_content", "lone surrogate at 2"),
        ("/r/abc", {"correlation_id": "a"}, "url", "absolute http(s) URL"),
        ("ftp://x/r", {"correlation_id": "a"}, "url", "absolute http(s) URL"),
        (None, {"correlation_id": "a"}, "url", "got NoneType"),
    ],
)
def test_bad_link_metadata_is_refused(
    url: Any, options: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(PayloadError) as info:
        add_link_metadata(url, **options)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_exactly_128_characters_is_fine() -> None:
    assert add_link_metadata("https://x/r", correlation_id="é" * 128).count("%C3%A9") == 128


# -- the module's surface -----------------------------------------------------------------------


@pytest.mark.parametrize("module", [_signature, _notification, _links, _receiver])
def test_docstring_examples_run(module: Any) -> None:
    failures, _tried = doctest.testmod(module)
    assert failures == 0


def test_public_names_are_documented_and_named_after_the_module() -> None:
    import cronofy_async.notifications as notifications

    for name in notifications.__all__:
        obj = getattr(notifications, name)
        if isinstance(obj, type) or inspect.isfunction(obj):
            assert obj.__doc__, name
            if getattr(obj, "__module__", "").startswith("cronofy_async"):
                assert obj.__module__ in ("cronofy_async.notifications", "cronofy_async"), name
    assert cronofy_async.NotificationError is NotificationError
    assert "NotificationError" in cronofy_async.__all__
    assert "NotificationError" in (cronofy_async._errors.__doc__ or "")

"""The payload builders: wire format and every refusal, all before any network call."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from cronofy_async import (
    Event,
    GroupRule,
    Host,
    NewSchedulerRequest,
    PayloadError,
    Recipient,
)
from cronofy_async._request import encode_create_body

from .conftest import SEED_BODY, seed_request


def body_of(request: NewSchedulerRequest, *, impersonating: bool = False) -> Any:
    return json.loads(encode_create_body(request, impersonating=impersonating))


def test_seed_example_comes_out_byte_for_byte() -> None:
    encoded = encode_create_body(seed_request(), impersonating=False)
    # Same keys, same order, same values, nothing extra, no nulls: only whitespace differs.
    assert encoded == json.dumps(json.loads(SEED_BODY), separators=(",", ":")).encode()


def test_group_rule_mode() -> None:
    request = NewSchedulerRequest(
        scheduler_group_rule=GroupRule(id="sgr_5346534636bd5c5ce4edd"),
        recipients=[Recipient(email="doc@evenitron.com")],
        event=Event(summary="Lessons"),
    )
    assert body_of(request) == {
        "scheduler_group_rule": {"id": "sgr_5346534636bd5c5ce4edd"},
        "recipients": [{"email": "doc@evenitron.com"}],
        "event": {"summary": "Lessons"},
    }


def test_impersonated_mode_sends_no_host() -> None:
    request = NewSchedulerRequest(
        recipients=[Recipient(email="doc@evenitron.com")], event=Event(summary="Lessons")
    )
    assert body_of(request, impersonating=True) == {
        "recipients": [{"email": "doc@evenitron.com"}],
        "event": {"summary": "Lessons"},
    }


def test_unicode_is_sent_as_utf8() -> None:
    request = NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email="zoe@example.com", display_name="Zoë Ångström")],
        event=Event(summary="Café ☕"),
    )
    encoded = encode_create_body(request, impersonating=False)
    assert "Zoë Ångström".encode() in encoded
    assert body_of(request)["event"]["summary"] == "Café ☕"


def test_extra_fields_are_merged_at_each_level() -> None:
    request = NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=[Recipient(email="a@example.com", extra={"locale": "en-GB"})],
        event=Event(
            summary="Intro",
            extra={"description": "Say hello", "duration": {"minutes": 30}},
        ),
        extra={"tags": [{"value": "vip"}]},
    )
    assert body_of(request) == {
        "host": {"sub": "acc_1"},
        "recipients": [{"email": "a@example.com", "locale": "en-GB"}],
        "event": {"summary": "Intro", "description": "Say hello", "duration": {"minutes": 30}},
        "tags": [{"value": "vip"}],
    }


def test_extra_is_copied_so_later_mutation_does_not_leak_in() -> None:
    extra: dict[str, Any] = {"description": "before"}
    event = Event(summary="x", extra=extra)
    extra["description"] = "after"
    assert event.extra == {"description": "before"}


def test_builders_are_frozen_keyword_only_and_hashable() -> None:
    request = seed_request()
    with pytest.raises(AttributeError):
        request.host = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        Host("acc_1")  # type: ignore[call-arg]
    assert hash(request) == hash(seed_request())
    assert request == seed_request()


def test_recipients_accepts_any_iterable_and_stores_a_tuple() -> None:
    request = NewSchedulerRequest(
        host=Host(sub="acc_1"),
        recipients=(r for r in [Recipient(email="a@example.com")]),
        event=Event(summary="x"),
    )
    assert request.recipients == (Recipient(email="a@example.com"),)


# -- refusals -----------------------------------------------------------------------------


def refused(field: str, fragment: str) -> Any:
    """Expect a PayloadError whose field is `field` and whose message contains `fragment`."""
    return pytest.raises(PayloadError, match="^" + re.escape(field) + ": .*" + fragment)


def test_both_host_and_group_rule() -> None:
    with refused("host", "not both"):
        NewSchedulerRequest(
            host=Host(sub="acc_1"),
            scheduler_group_rule=GroupRule(id="sgr_1"),
            recipients=[Recipient(email="a@example.com")],
            event=Event(summary="x"),
        )


def test_no_host_on_a_call_that_is_not_impersonated_names_the_three_ways() -> None:
    request = NewSchedulerRequest(
        recipients=[Recipient(email="a@example.com")], event=Event(summary="x")
    )
    with pytest.raises(PayloadError) as info:
        encode_create_body(request, impersonating=False)
    assert info.value.field == "host"
    message = str(info.value)
    assert "host=Host(sub=...)" in message
    assert "scheduler_group_rule=GroupRule(id=...)" in message
    assert "impersonate" in message


@pytest.mark.parametrize("count", [0, 2])
def test_recipient_count(count: int) -> None:
    recipients = [Recipient(email=f"r{i}@example.com") for i in range(count)]
    with refused("recipients", f"exactly one recipient .*got {count}"):
        NewSchedulerRequest(host=Host(sub="acc_1"), recipients=recipients, event=Event(summary="x"))


def test_recipients_must_be_a_list_not_a_single_recipient() -> None:
    with refused("recipients", "must be a list of Recipient"):
        NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=Recipient(email="a@example.com"),  # type: ignore[arg-type]
            event=Event(summary="x"),
        )


def test_recipients_items_must_be_recipients() -> None:
    with refused("recipients[0]", "must be a Recipient, got dict"):
        NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[{"email": "a@example.com"}],  # type: ignore[list-item]
            event=Event(summary="x"),
        )


@pytest.mark.parametrize(
    ("email", "fragment"),
    [
        ("", "is required"),
        ("doc", "not a valid email"),
        ("doc@", "not a valid email"),
        ("@evenitron.com", "not a valid email"),
        ("doc@evenitron", "not a valid email"),
        ("doc brown@evenitron.com", "not a valid email"),
        ("doc@evenitron.com\r\nBcc: x@y.z", "not a valid email"),
        (None, "must be a string, got NoneType"),
    ],
)
def test_bad_email(email: Any, fragment: str) -> None:
    with refused("recipients.email", fragment):
        Recipient(email=email)


def test_display_name_must_be_a_string() -> None:
    with refused("recipients.display_name", "must be a string, got int"):
        Recipient(email="a@example.com", display_name=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("summary", ["", "   ", "\n"])
def test_empty_summary(summary: str) -> None:
    with refused("event.summary", "required"):
        Event(summary=summary)


def test_summary_length_limit() -> None:
    assert Event(summary="x" * 1024).summary == "x" * 1024
    with refused("event.summary", "1025 characters long; Cronofy allows at most 1024"):
        Event(summary="x" * 1025)


def test_event_is_required() -> None:
    with refused("event", "is required"):
        NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email="a@example.com")],
            event=None,  # type: ignore[arg-type]
        )


def test_event_must_be_an_event() -> None:
    with refused("event", "must be a Event, got dict"):
        NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email="a@example.com")],
            event={"summary": "x"},  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda v: Host(sub=v), "host.sub"),
        (lambda v: GroupRule(id=v), "scheduler_group_rule.id"),
    ],
)
@pytest.mark.parametrize(
    ("value", "fragment"),
    [("", "must not be empty"), ("acc 1", "whitespace"), ("acc_1\n", "whitespace")],
)
def test_bad_ids(build: Any, field: str, value: str, fragment: str) -> None:
    with refused(field, fragment):
        build(value)


def test_host_must_be_a_host() -> None:
    with refused("host", "must be a Host, got str"):
        NewSchedulerRequest(
            host="acc_1",  # type: ignore[arg-type]
            recipients=[Recipient(email="a@example.com")],
            event=Event(summary="x"),
        )


@pytest.mark.parametrize(
    ("extra", "field", "fragment"),
    [
        ({"event": {}}, "extra.event", "modelled field"),
        ({"": 1}, "extra", "non-empty strings"),
        ({1: 1}, "extra", "non-empty strings"),
        ({"when": object()}, "extra", "JSON-serializable"),
        ([("tags", 1)], "extra", "must be a mapping"),
    ],
)
def test_bad_extra(extra: Any, field: str, fragment: str) -> None:
    with refused(field, fragment):
        NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email="a@example.com")],
            event=Event(summary="x"),
            extra=extra,
        )


def test_extra_cannot_shadow_a_modelled_event_field() -> None:
    with refused("event.summary", "modelled field"):
        Event(summary="x", extra={"summary": "y"})


def test_something_other_than_a_request_is_refused() -> None:
    with refused("request", "must be a NewSchedulerRequest, got dict"):
        encode_create_body({"event": {}}, impersonating=False)  # type: ignore[arg-type]


def test_payload_error_is_a_value_error_with_the_field() -> None:
    with pytest.raises(ValueError, match=r"event\.summary") as info:
        Event(summary="")
    assert isinstance(info.value, PayloadError)
    assert info.value.field == "event.summary"


# -- input that can never be sent is refused when it is built, never sent as a guess -----------

LONE_SURROGATE = "Intro \ud83d call"  # half of an emoji: no UTF-8 encoding exists for it


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda v: Event(summary=v), "event.summary"),
        (lambda v: Recipient(email="a@example.com", display_name=v), "recipients.display_name"),
        (lambda v: Recipient(email=f"a{v}@example.com".replace(" ", "")), "recipients.email"),
        (lambda v: Host(sub=v.replace(" ", "")), "host.sub"),
        (lambda v: GroupRule(id=v.replace(" ", "")), "scheduler_group_rule.id"),
    ],
)
def test_a_lone_surrogate_is_refused_naming_the_field(build: Any, field: str) -> None:
    with refused(field, "lone surrogate"):
        build(LONE_SURROGATE)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"description": LONE_SURROGATE}, "event"),
        ({"location": {"description": [LONE_SURROGATE]}}, "event"),
        ({LONE_SURROGATE: "x"}, "event"),
    ],
)
def test_a_lone_surrogate_anywhere_in_extra_is_refused(extra: Any, field: str) -> None:
    with refused(field, "not valid UTF-8"):
        Event(summary="x", extra=extra)


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    "build",
    [
        lambda extra: Event(summary="x", extra=extra),
        lambda extra: Recipient(email="a@example.com", extra=extra),
        lambda extra: NewSchedulerRequest(
            host=Host(sub="acc_1"),
            recipients=[Recipient(email="a@example.com")],
            event=Event(summary="x"),
            extra=extra,
        ),
    ],
    ids=["event", "recipient", "request"],
)
def test_nan_and_infinity_anywhere_in_extra_are_refused(build: Any, number: float) -> None:
    # JSON has no NaN or Infinity: a body carrying them is not JSON, and never leaves.
    with pytest.raises(PayloadError, match="NaN or Infinity"):
        build({"duration": {"minutes": [1, number]}})


def test_the_body_is_strict_json() -> None:
    from cronofy_async._operation import json_body

    with pytest.raises(ValueError, match="JSON compliant"):
        json_body({"x": float("nan")})


@attrs.frozen(kw_only=True)
class _TaggedEvent(Event):
    tag: str = "campaign"

    def __attrs_post_init__(self) -> None:  # a subclass's own, not calling up
        pass


@attrs.frozen(kw_only=True)
class _TaggedRecipient(Recipient):
    tag: str = "campaign"

    def __attrs_post_init__(self) -> None:
        pass


@attrs.frozen(kw_only=True)
class _TaggedRequest(NewSchedulerRequest):
    tag: str = "campaign"

    def __attrs_post_init__(self) -> None:
        pass


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: _TaggedEvent(summary=" "), "event.summary"),
        (lambda: _TaggedEvent(summary="s", duration_minutes=-5), "event.duration.minutes"),
        (lambda: _TaggedRecipient(email="not an email"), "recipients.email"),
        (
            lambda: _TaggedRequest(
                recipients=[Recipient(email="doc@evenitron.com")],
                event="not an event",  # type: ignore[arg-type]
            ),
            "event",
        ),
    ],
)
def test_a_subclass_of_a_builder_is_checked_like_the_builder(
    build: Callable[[], object], field: str
) -> None:
    with pytest.raises(PayloadError) as info:
        build()
    assert info.value.field == field


class _AsciiClaimingStr(str):
    __slots__ = ()

    def isascii(self) -> bool:
        return True


@pytest.mark.parametrize("field", ["description", "location", "locale"])
def test_a_lone_surrogate_is_refused_whatever_the_string_says_of_itself(field: str) -> None:
    with pytest.raises(PayloadError, match="lone surrogate"):
        Event(summary="s", **{field: _AsciiClaimingStr("caf\ud800")})  # type: ignore[arg-type]


@attrs.frozen(kw_only=True)
class _PoliteEvent(Event):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()


@attrs.frozen(kw_only=True)
class _PoliteRecipient(Recipient):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()


@attrs.frozen(kw_only=True)
class _PoliteRequest(NewSchedulerRequest):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()


def test_a_subclass_may_call_up_to_the_builders_post_init() -> None:
    request = _PoliteRequest(
        host=Host(sub="acc_1"),
        recipients=[_PoliteRecipient(email="doc@evenitron.com")],
        event=_PoliteEvent(summary="Driving lessons"),
    )
    assert body_of(request)["event"] == {"summary": "Driving lessons"}
    with pytest.raises(PayloadError, match="not both"):
        _PoliteRequest(
            host=Host(sub="acc_1"),
            scheduler_group_rule=GroupRule(id="sgr_1"),
            recipients=[Recipient(email="doc@evenitron.com")],
            event=Event(summary="s"),
        )


@pytest.mark.parametrize(
    "build",
    [
        lambda text: Event(summary=text),
        lambda text: Recipient(email="doc@evenitron.com", display_name=text),
        lambda text: Recipient(email=text + "@evenitron.com"),
    ],
)
def test_a_lone_surrogate_in_any_text_is_refused_whatever_the_string_says(
    build: Callable[[str], object],
) -> None:
    with pytest.raises(PayloadError, match="lone surrogate"):
        build(_AsciiClaimingStr("doc\ud800"))

"""FakeCronofy in process: Cronofy's answers, its errors, its limits, its faults, its ledger."""

from __future__ import annotations

import argparse
import json
from typing import Any

import httpx
import pytest

from cronofy_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AsyncSchedulerAPI,
    AuthenticationError,
    ConfigurationError,
    Event,
    GroupRule,
    Host,
    NewSchedulerRequest,
    PermissionDeniedError,
    RateLimit,
    RateLimitError,
    Recipient,
    ServerError,
    ValidationError,
)
from cronofy_async.testing import DEFAULT_SECRET, CreatedRequest, FakeCronofy, Fault, Faults
from cronofy_async.testing._cli import add_arguments, build

from .conftest import SEED_BODY
from .helpers import FakeClock, use_clock

PATH = "/v1/scheduler_requests"
AUTH = {"Authorization": f"Bearer {DEFAULT_SECRET}"}


def invite(email: str = "doc@evenitron.com", **options: Any) -> NewSchedulerRequest:
    options.setdefault("host", Host(sub="acc_1"))
    return NewSchedulerRequest(
        recipients=[Recipient(email=email)], event=Event(summary="Lessons"), **options
    )


@pytest.fixture
def fake() -> FakeCronofy:
    return FakeCronofy(
        members=["acc_1", "acc_2", "acc_61815034636bd5c5ce4edd"],
        group_rules=["sgr_1"],
        rate_limit=None,
    )


def api_for(fake: FakeCronofy, **options: Any) -> AsyncSchedulerAPI:
    """fake.api(), on virtual time so that retries and 429 pauses never sleep for real."""
    api = fake.api(**options)
    use_clock(api, FakeClock())
    return api


async def post(fake: FakeCronofy, body: Any, headers: dict[str, str] | None = None) -> Any:
    async with fake.client() as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return await client.post(
            PATH, content=content, headers=AUTH if headers is None else headers
        )


async def test_answers_the_documented_success(fake: FakeCronofy) -> None:
    response = await post(fake, json.loads(SEED_BODY))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    created = response.json()["scheduler_request"]
    assert created["scheduler_request_id"].startswith("srq_")
    [recipient] = created["recipients"]
    assert recipient["email"] == "doc@evenitron.com"
    assert recipient["display_name"] == "Dr Emmet Brown"
    assert recipient["select_url"].startswith("https://")


async def test_the_api_in_one_line_and_the_ledger(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        first = await api.create_scheduler_request(invite("a@example.com"))
        second = await api.impersonate("acc_2").create_scheduler_request(
            NewSchedulerRequest(
                recipients=[Recipient(email="b@example.com", display_name="Bea")],
                event=Event(summary="Intro"),
            )
        )
        third = await api.create_scheduler_request(
            invite("c@example.com", host=None, scheduler_group_rule=GroupRule(id="sgr_1"))
        )
    assert api.http_client.is_closed  # fake.api() owns its client
    assert (
        len({first.scheduler_request_id, second.scheduler_request_id, third.scheduler_request_id})
        == 3
    )
    assert [entry.email for entry in fake.created] == [
        "a@example.com",
        "b@example.com",
        "c@example.com",
    ]
    a, b, c = fake.created
    assert (a.sequence, a.host_sub, a.impersonated, a.host) == (0, "acc_1", None, "acc_1")
    assert (b.host_sub, b.impersonated, b.host, b.display_name) == (None, "acc_2", "acc_2", "Bea")
    assert (c.group_rule_id, c.host) == ("sgr_1", "sgr_1")
    assert a.client_secret == DEFAULT_SECRET
    assert a.scheduler_request_id == first.scheduler_request_id
    assert a.body["event"] == {"summary": "Lessons"}
    assert fake.created_count == 3
    assert fake.outcomes["created"] == 3
    assert DEFAULT_SECRET not in repr(a)


async def test_unknown_secret_is_401(fake: FakeCronofy) -> None:
    async with api_for(fake, client_secret="sk_wrong") as api:
        with pytest.raises(AuthenticationError):
            await api.create_scheduler_request(invite())
    response = await post(fake, json.loads(SEED_BODY), headers={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert fake.created == []


@pytest.mark.parametrize(
    ("body", "field", "key"),
    [
        ({"event": {"summary": "x"}, "host": {"sub": "acc_1"}}, "recipients", "errors.required"),
        (
            {
                "recipients": [{"email": "a@example.com"}, {"email": "b@example.com"}],
                "event": {"summary": "x"},
                "host": {"sub": "acc_1"},
            },
            "recipients",
            "errors.invalid",
        ),
        (
            {"recipients": [{}], "event": {"summary": "x"}, "host": {"sub": "acc_1"}},
            "recipients.email",
            "errors.required",
        ),
        (
            {
                "recipients": [{"email": "nope"}],
                "event": {"summary": "x"},
                "host": {"sub": "acc_1"},
            },
            "recipients.email",
            "errors.invalid",
        ),
        (
            {"recipients": [{"email": "a@example.com"}], "host": {"sub": "acc_1"}},
            "event",
            "errors.required",
        ),
        (
            {"recipients": [{"email": "a@example.com"}], "event": {}, "host": {"sub": "acc_1"}},
            "event.summary",
            "errors.required",
        ),
        (
            {
                "recipients": [{"email": "a@example.com"}],
                "event": {"summary": "x" * 1025},
                "host": {"sub": "acc_1"},
            },
            "event.summary",
            "errors.too_long",
        ),
        (
            {
                "recipients": [{"email": "a@example.com"}],
                "event": {"summary": "x"},
                "host": {"sub": "acc_1"},
                "scheduler_group_rule": {"id": "sgr_1"},
            },
            "host",
            "errors.invalid",
        ),
        (
            {"recipients": [{"email": "a@example.com"}], "event": {"summary": "x"}},
            "host",
            "errors.required",
        ),
        (
            {"recipients": [{"email": "a@example.com"}], "event": {"summary": "x"}, "host": {}},
            "host.sub",
            "errors.required",
        ),
        (
            {
                "recipients": [{"email": "a@example.com"}],
                "event": {"summary": "x"},
                "host": {"sub": "acc_stranger"},
            },
            "host.sub",
            "errors.unknown",
        ),
        (
            {
                "recipients": [{"email": "a@example.com"}],
                "event": {"summary": "x"},
                "scheduler_group_rule": {"id": "sgr_other"},
            },
            "scheduler_group_rule.id",
            "errors.unknown",
        ),
        (
            {
                "recipients": [{"email": "a@example.com"}],
                "event": {"summary": "x"},
                "scheduler_group_rule": {},
            },
            "scheduler_group_rule.id",
            "errors.required",
        ),
        ([1, 2], "body", "errors.invalid"),
        (b"{not json", "body", "errors.invalid"),
    ],
)
async def test_each_payload_rule_is_a_422_in_cronofys_format(
    fake: FakeCronofy, body: Any, field: str, key: str
) -> None:
    response = await post(fake, body)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert field in errors
    [problem] = errors[field]
    assert set(problem) == {"key", "description"}
    assert problem["key"] == key
    assert fake.created == []


async def test_a_422_reads_well_through_the_client(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        with pytest.raises(ValidationError) as info:
            await api.create_scheduler_request(invite(host=Host(sub="acc_stranger")))
    assert str(info.value).startswith("host.sub: not a member of the Organizational Unit")
    assert info.value.errors["host.sub"][0].key == "errors.unknown"


async def test_impersonating_a_stranger_is_403(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        with pytest.raises(PermissionDeniedError):
            await api.impersonate("acc_stranger").create_scheduler_request(invite(host=None))


async def test_any_member_and_rule_when_none_are_given() -> None:
    fake = FakeCronofy(rate_limit=None)
    async with api_for(fake) as api:
        await api.create_scheduler_request(invite(host=Host(sub="acc_whoever")))
        await api.impersonate("acc_anyone").create_scheduler_request(invite(host=None))
    assert len(fake.created) == 2


async def test_other_paths_and_methods(fake: FakeCronofy) -> None:
    async with fake.client() as client:
        assert (await client.post("/v1/other", headers=AUTH)).status_code == 404
        response = await client.get(PATH, headers=AUTH)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"


async def test_rate_limit_by_arrivals_per_secret() -> None:
    fake = FakeCronofy(rate_limit=RateLimit(per_second=3, per_minute=None))
    statuses = [(await post(fake, json.loads(SEED_BODY))).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = await post(fake, json.loads(SEED_BODY))
    assert response.headers["retry-after"] == "1"
    assert fake.outcomes["429"] == 3
    assert len(fake.created) == 3


async def test_rate_limit_is_counted_per_secret() -> None:
    fake = FakeCronofy(["sk_a", "sk_b"], rate_limit=RateLimit(per_second=1, per_minute=None))
    a = await post(fake, json.loads(SEED_BODY), {"Authorization": "Bearer sk_a"})
    b = await post(fake, json.loads(SEED_BODY), {"Authorization": "Bearer sk_b"})
    assert (a.status_code, b.status_code) == (200, 200)


async def test_default_rate_limit_is_cronofys() -> None:
    fake = FakeCronofy()
    statuses = [(await post(fake, json.loads(SEED_BODY))).status_code for _ in range(51)]
    assert statuses.count(200) == 50
    assert statuses[-1] == 429


# -- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "created"),
    [
        (Fault.RATE_LIMITED, RateLimitError, 0),
        (Fault.UNAVAILABLE, ServerError, 0),
        (Fault.DROP_BEFORE, APIConnectionError, 0),
        (Fault.ERROR_AFTER_CREATE, ServerError, 1),
        (Fault.DROP_AFTER, APIConnectionError, 1),
    ],
)
async def test_each_injected_fault(
    fake: FakeCronofy, fault: Fault, error: type[APIError], created: int
) -> None:
    fake.inject(fault)
    async with api_for(fake, retry=None) as api:
        with pytest.raises(error) as info:
            await api.create_scheduler_request(invite())
        assert info.value.outcome_unknown is (fault is not Fault.RATE_LIMITED)
        assert len(fake.created) == created
        assert fault.processed is bool(created)
        await api.create_scheduler_request(invite("next@example.com"))  # only the next one
    assert fake.outcomes[f"fault:{fault.value}"] == 1


async def test_a_slow_answer_trips_the_read_timeout_in_process() -> None:
    fake = FakeCronofy(rate_limit=None, faults=Faults(slow=1.0, slow_seconds=30))
    async with api_for(fake, timeout=0.05) as api:
        with pytest.raises(APITimeoutError) as info:
            await api.create_scheduler_request(invite())
    assert info.value.outcome_unknown is True
    assert len(fake.created) == 1  # it was processed: that is the danger


async def test_injected_faults_come_before_random_ones_and_in_order(fake: FakeCronofy) -> None:
    fake.inject(Fault.UNAVAILABLE, times=2)
    fake.inject(Fault.RATE_LIMITED)
    statuses = [(await post(fake, json.loads(SEED_BODY))).status_code for _ in range(4)]
    assert statuses == [503, 503, 429, 200]


def test_inject_takes_a_fault(fake: FakeCronofy) -> None:
    with pytest.raises(ConfigurationError, match="inject"):
        fake.inject("drop_after")  # type: ignore[arg-type]


def test_random_faults_depend_on_seed_body_and_occurrence_only() -> None:
    faults = Faults(seed=11, rate_limited=0.2, unavailable=0.2, drop_after=0.2)
    bodies = [f'{{"n": {n}}}'.encode() for n in range(300)]
    first = [faults.draw(body, 0) for body in bodies]
    assert first == [faults.draw(body, 0) for body in bodies]  # reproducible
    assert first != [faults.draw(body, 1) for body in bodies]  # a retry draws afresh
    assert first != [
        Faults(seed=12, rate_limited=0.2, unavailable=0.2, drop_after=0.2).draw(b, 0)
        for b in bodies
    ]
    share = sum(fault is not None for fault in first) / len(first)
    assert 0.45 < share < 0.75
    assert {f for f in first if f} == {Fault.RATE_LIMITED, Fault.UNAVAILABLE, Fault.DROP_AFTER}


async def test_random_faults_over_the_api_reproduce_whatever_the_order() -> None:
    async def run(order: list[int]) -> list[tuple[str, str]]:
        fake = FakeCronofy(rate_limit=None, faults=Faults(seed=3, unavailable=0.3, drop_before=0.2))
        outcomes = []
        async with api_for(fake, retry=None) as api:
            for i in order:
                try:
                    await api.create_scheduler_request(invite(f"p{i}@example.com"))
                    outcomes.append((f"p{i}", "ok"))
                except Exception as error:
                    outcomes.append((f"p{i}", type(error).__name__))
        return sorted(outcomes)

    assert await run(list(range(60))) == await run(list(reversed(range(60))))


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"drop_after": 1.5}, "Faults.drop_after must be a probability"),
        ({"slow": -0.1}, "Faults.slow must be a probability"),
        ({"latency": -1}, "Faults.latency must be seconds"),
        ({"unavailable": 0.6, "drop_before": 0.6}, "add up to more than 1"),
    ],
)
def test_bad_faults(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Faults(**options)


async def test_latency_is_added() -> None:
    clock = FakeClock()
    fake = FakeCronofy(rate_limit=None, faults=Faults(latency=0.01))
    async with api_for(fake) as api:
        use_clock(api, clock)
        await api.create_scheduler_request(invite())
    assert fake.created_count == 1


# -- the ledger ---------------------------------------------------------------------------------


async def test_duplicates_finds_the_same_invite_created_twice(fake: FakeCronofy) -> None:
    async with api_for(fake) as api:
        await api.create_scheduler_request(invite("a@example.com"))
        await api.create_scheduler_request(invite("A@example.com"))  # same person
        await api.create_scheduler_request(invite("b@example.com"))
        await api.create_scheduler_request(invite("a@example.com", host=Host(sub="acc_2")))
    duplicates = fake.duplicates()
    assert list(duplicates) == [("a@example.com", "acc_1", "Lessons")]
    assert [e.sequence for e in duplicates[("a@example.com", "acc_1", "Lessons")]] == [0, 1]
    by_email_only = fake.duplicates(key=lambda entry: entry.email.lower())
    assert [len(v) for v in by_email_only.values()] == [3]


async def test_record_off_keeps_counts_only() -> None:
    fake = FakeCronofy(rate_limit=None, record=False)
    async with api_for(fake) as api:
        for i in range(5):
            await api.create_scheduler_request(invite(f"p{i}@example.com"))
    assert fake.created == []
    assert fake.created_count == 5
    assert fake.received == 5
    assert "created=5" in repr(fake)


def test_ledger_entries_are_values() -> None:
    entry = CreatedRequest(
        sequence=0,
        scheduler_request_id="srq_1",
        email="a@example.com",
        display_name=None,
        summary="x",
        host_sub=None,
        group_rule_id=None,
        impersonated=None,
        client_secret="s",
        body={},
    )
    assert entry.host is None


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"client_secrets": []}, "at least one client secret"),
        ({"client_secrets": "sk_one"}, "list of strings"),
        ({"members": "acc_1"}, "members must be a list"),
    ],
)
def test_bad_fake_configuration(options: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        FakeCronofy(**options)


def test_command_line_options_build_the_fake() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--secret", "sk_1", "--member", "acc_1", "--group-rule", "sgr_1",
            "--per-second", "5", "--no-ledger", "--seed", "4",
            "--fault", "drop_after=0.1", "--fault", "rate_limited=0.2", "--latency", "0.01",
        ]
    )  # fmt: skip
    fake = build(args)
    assert fake.secret == "sk_1"
    assert fake.faults == Faults(seed=4, latency=0.01, drop_after=0.1, rate_limited=0.2)
    assert fake._rate_limit == RateLimit(per_second=5, per_minute=500)
    assert build(parser.parse_args(["--no-rate-limit"]))._rate_limit is None
    with pytest.raises(SystemExit, match="--fault takes KIND=P"):
        build(parser.parse_args(["--fault", "explode=1"]))


def test_in_process_transport_is_an_httpx_transport(fake: FakeCronofy) -> None:
    client = fake.client()
    assert isinstance(client, httpx.AsyncClient)


async def test_fake_api_sends_through_the_librarys_own_default_path(fake: FakeCronofy) -> None:
    from cronofy_async.testing import InProcessTransport

    async with fake.api(rate_limit=None) as api:
        assert isinstance(api._shared.direct, InProcessTransport)  # the direct, default path
        assert api._shared.remake is not None  # the library's own client, rebuilt per loop
        await api.create_scheduler_request(invite())
    assert api.http_client.is_closed
    assert fake.created_count == 1


@pytest.mark.parametrize(
    "options", [{"http_backend": "aiohttp"}, {"http_client": httpx.AsyncClient()}]
)
def test_fake_api_says_what_it_cannot_do(fake: FakeCronofy, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"serve the fake"):
        fake.api(**options)


def test_command_line_options_for_compression_and_retry_after() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    fake = build(parser.parse_args(["--compress", "--no-retry-after"]))
    assert fake._compress is True
    assert fake._retry_after is False
    fake = build(parser.parse_args([]))
    assert fake._compress is False
    assert fake._retry_after is True

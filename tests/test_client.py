"""AsyncSchedulerAPI against a respx-mocked Cronofy: wire format, views, lifecycle."""

from __future__ import annotations

import json
import logging
import platform

import httpx
import pytest
import respx

from cronofy_async import (
    AsyncSchedulerAPI,
    ClientClosedError,
    ConfigurationError,
    DataCenter,
    Event,
    NewSchedulerRequest,
    PayloadError,
    Recipient,
    __version__,
)

from .conftest import CREATE_URL, SECRET, SEED_BODY, ok_response, seed_request


def impersonated_request() -> NewSchedulerRequest:
    return NewSchedulerRequest(
        recipients=[Recipient(email="doc@evenitron.com")], event=Event(summary="Lessons")
    )


async def test_create_sends_the_documented_request(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    created = await api.create_scheduler_request(seed_request())

    assert created.scheduler_request_id == "srq_5987234923847923"
    assert created.recipients[0].select_url == "https://app.cronofy.com/r/234ebnd"
    assert created.recipients[0].display_name == "Dr Emmet Brown"
    assert created.select_url == "https://app.cronofy.com/r/234ebnd"

    sent = route.calls.last.request
    assert sent.method == "POST"
    assert json.loads(sent.content) == json.loads(SEED_BODY)
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert sent.headers["content-type"] == "application/json; charset=utf-8"
    assert sent.headers["accept"] == "application/json"
    assert "cronofy-impersonate" not in sent.headers
    user_agent = sent.headers["user-agent"]
    assert f"cronofy-async/{__version__}" in user_agent
    assert platform.python_version() in user_agent
    assert f"httpx/{httpx.__version__}" in user_agent


async def test_plain_respx_mock_intercepts_a_default_api() -> None:
    # What a user's own test suite does: no fixtures of ours, just respx.mock.
    async with AsyncSchedulerAPI(client_secret=SECRET) as api:
        with respx.mock:
            route = respx.post(CREATE_URL).mock(return_value=ok_response())
            await api.create_scheduler_request(seed_request())
        assert route.call_count == 1


@pytest.mark.parametrize(
    ("data_center", "url"),
    [
        ("us", "https://api.cronofy.com"),
        ("au", "https://api-au.cronofy.com"),
        ("ca", "https://api-ca.cronofy.com"),
        ("de", "https://api-de.cronofy.com"),
        ("sg", "https://api-sg.cronofy.com"),
        ("uk", "https://api-uk.cronofy.com"),
        ("api-uk.cronofy.com", "https://api-uk.cronofy.com"),
        ("https://API-DE.cronofy.com/", "https://api-de.cronofy.com"),
    ],
)
async def test_each_data_center_url(data_center: str, url: str, mock: respx.MockRouter) -> None:
    route = mock.post(f"{url}/v1/scheduler_requests").mock(return_value=ok_response())
    async with AsyncSchedulerAPI(client_secret=SECRET, data_center=data_center) as api:
        assert api.base_url == url
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 1


async def test_base_url_override(mock: respx.MockRouter) -> None:
    route = mock.post("http://127.0.0.1:9999/proxy/v1/scheduler_requests").mock(
        return_value=ok_response()
    )
    async with AsyncSchedulerAPI(
        client_secret=SECRET, data_center="uk", base_url="http://127.0.0.1:9999/proxy/"
    ) as api:
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 1


@pytest.mark.parametrize("base_url", ["ftp://example.com", "/relative", "not a url", "http://"])
def test_bad_base_url(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        AsyncSchedulerAPI(client_secret=SECRET, base_url=base_url)


def test_unknown_data_center_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"'eu'.*valid ones are"):
        AsyncSchedulerAPI(client_secret=SECRET, data_center="eu")


async def test_impersonation_header_and_host_rule(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    view = api.impersonate("acc_5678")
    assert view.impersonating == "acc_5678"
    await view.create_scheduler_request(impersonated_request())
    sent = route.calls.last.request
    assert sent.headers["cronofy-impersonate"] == "acc_5678"
    assert sent.headers["authorization"] == f"Bearer {SECRET}"
    assert "host" not in json.loads(sent.content)

    # The root is not impersonated, so the same hostless request is refused there, unsent.
    with pytest.raises(PayloadError, match=r"^host: no host given"):
        await api.create_scheduler_request(impersonated_request())
    assert route.call_count == 1


@pytest.mark.parametrize(
    "sub",
    ["", " ", "acc_1\r\nX-Evil: 1", "acc 1", "acc_1\x00", "acc_1\u200b", "accé_1", "acc\ud800"],
)
def test_impersonation_sub_is_checked(sub: str) -> None:
    api = AsyncSchedulerAPI(client_secret=SECRET)
    with pytest.raises(PayloadError, match=r"^Cronofy-Impersonate: "):
        api.impersonate(sub)


async def test_views_share_one_pool_and_compose(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post("https://api-de.cronofy.com/v1/scheduler_requests").mock(
        return_value=ok_response()
    )
    view = api.impersonate("acc_1").with_data_center("de")
    assert view.http_client is api.http_client
    assert view.data_center is DataCenter.DE
    assert view.impersonating == "acc_1"
    assert api.data_center is DataCenter.US  # the root is unchanged
    await view.create_scheduler_request(impersonated_request())
    assert route.calls.last.request.headers["cronofy-impersonate"] == "acc_1"


async def test_closing_a_view_keeps_the_pool_open(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    async with api.impersonate("acc_1") as view:
        pass
    assert view.closed
    assert not api.closed
    assert not api.http_client.is_closed
    with pytest.raises(ClientClosedError, match="view was closed"):
        await view.create_scheduler_request(impersonated_request())
    await api.create_scheduler_request(seed_request())


async def test_closing_the_root_closes_its_own_client_and_every_view(
    mock: respx.MockRouter,
) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    api = AsyncSchedulerAPI(client_secret=SECRET)
    view = api.with_data_center("us")
    await api.aclose()
    await api.aclose()  # twice is harmless
    assert api.closed
    assert view.closed
    assert api.http_client.is_closed
    for target in (api, view):
        with pytest.raises(ClientClosedError, match="nothing was sent"):
            await target.create_scheduler_request(seed_request())
    with pytest.raises(ClientClosedError):
        api.impersonate("acc_1")
    with pytest.raises(ClientClosedError):
        async with api:
            pass
    assert route.call_count == 0


async def test_works_without_async_with(mock: respx.MockRouter) -> None:
    mock.post(CREATE_URL).mock(return_value=ok_response())
    api = AsyncSchedulerAPI(client_secret=SECRET)
    try:
        created = await api.create_scheduler_request(seed_request())
    finally:
        await api.aclose()
    assert created.scheduler_request_id.startswith("srq_")


async def test_a_callers_client_is_used_and_never_closed(mock: respx.MockRouter) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    async with httpx.AsyncClient() as client:
        async with AsyncSchedulerAPI(client_secret=SECRET, http_client=client) as api:
            assert api.http_client is client
            await api.create_scheduler_request(seed_request())
        assert api.closed
        assert not client.is_closed
    assert route.call_count == 1


async def test_a_callers_closed_client_gives_a_clear_error(mock: respx.MockRouter) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    client = httpx.AsyncClient()
    api = AsyncSchedulerAPI(client_secret=SECRET, http_client=client)
    await client.aclose()
    with pytest.raises(ClientClosedError, match=r"httpx\.AsyncClient .* is closed"):
        await api.create_scheduler_request(seed_request())
    assert route.call_count == 0


def test_http_client_must_be_an_async_client() -> None:
    with pytest.raises(ConfigurationError, match=r"must be an httpx\.AsyncClient, got Client"):
        AsyncSchedulerAPI(client_secret=SECRET, http_client=httpx.Client())  # type: ignore[arg-type]


def test_secret_and_data_center_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRONOFY_CLIENT_SECRET", "from_env\n")
    monkeypatch.setenv("CRONOFY_DATA_CENTER", "sg")
    api = AsyncSchedulerAPI()
    assert api.data_center is DataCenter.SG
    assert api.base_url == "https://api-sg.cronofy.com"
    assert api._shared.secret.reveal() == "from_env"  # the trailing newline of a file is dropped


@pytest.mark.parametrize("secret", [None, "", "   "])
def test_missing_secret_says_how_to_provide_one(secret: str | None) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncSchedulerAPI(client_secret=secret)
    assert "client_secret=" in str(info.value)
    assert "CRONOFY_CLIENT_SECRET" in str(info.value)


def test_secret_with_inner_whitespace_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncSchedulerAPI(client_secret="abc\r\nX-Evil: 1")
    assert "abc" not in str(info.value)


@pytest.mark.parametrize(
    "secret",
    [
        "sk_live_abc\u200bdef",  # a zero-width space, from a copy-paste
        "sk_live_abcdéf",
        "sk_live_abc\ud800def",
        "sk_live_abc\u00a0def",  # a no-break space
    ],
)
def test_a_non_ascii_secret_is_refused_at_construction_without_echoing_it(secret: str) -> None:
    import traceback

    with pytest.raises(ConfigurationError, match="ASCII") as info:
        AsyncSchedulerAPI(client_secret=secret)
    shown = "".join(traceback.format_exception(info.value))
    assert "abc" not in shown
    assert "abc" not in repr(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None


@pytest.mark.parametrize("timeout", [0, -1, "30", True])
def test_bad_timeout(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        AsyncSchedulerAPI(client_secret=SECRET, timeout=timeout)  # type: ignore[arg-type]


async def test_default_timeout_is_5s_connect_30s_rest(
    api: AsyncSchedulerAPI, mock: respx.MockRouter
) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    await api.create_scheduler_request(seed_request())
    assert route.calls.last.request.extensions["timeout"] == {
        "connect": 5.0,
        "read": 30.0,
        "write": 30.0,
        "pool": 30.0,
    }


async def test_timeout_applies_through_a_callers_client(mock: respx.MockRouter) -> None:
    route = mock.post(CREATE_URL).mock(return_value=ok_response())
    async with httpx.AsyncClient(timeout=99) as client:
        api = AsyncSchedulerAPI(client_secret=SECRET, http_client=client, timeout=7)
        await api.create_scheduler_request(seed_request())
    assert route.calls.last.request.extensions["timeout"]["read"] == 7.0


async def test_the_secret_never_shows(
    mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A misbehaving server that echoes the Authorization header back in its error body.
    mock.post(CREATE_URL).mock(
        side_effect=lambda request: httpx.Response(
            500, text=f"boom: {request.headers['authorization']}"
        )
    )
    api = AsyncSchedulerAPI(client_secret=SECRET)
    view = api.impersonate("acc_1")
    assert SECRET not in repr(api)
    assert SECRET not in repr(view)
    assert SECRET not in repr(api._shared)
    with pytest.raises(Exception) as info:  # any error: its text is what is checked
        await api.create_scheduler_request(seed_request())
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert "[secret]" in str(info.value)
    assert SECRET not in caplog.text
    await api.aclose()


def test_repr_says_what_matters() -> None:
    api = AsyncSchedulerAPI(client_secret=SECRET, data_center="uk").impersonate("acc_1")
    assert repr(api) == (
        "<AsyncSchedulerAPI data_center='uk' base_url='https://api-uk.cronofy.com' "
        "impersonating='acc_1' closed=False>"
    )


def test_the_secret_cannot_be_pickled_or_printed() -> None:
    import pickle

    from cronofy_async._secret import ClientSecret

    secret = ClientSecret(SECRET)
    assert SECRET not in f"{secret} {secret!r}"
    assert secret.redact(f"x{SECRET}y") == "x[secret]y"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


@pytest.mark.parametrize(
    "base_url",
    [
        "https://proxy.example/cronofy?tenant=1",
        "https://proxy.example?",
        "https://proxy.example/cronofy#frag",
        "https://proxy.example/#",
    ],
)
def test_a_base_url_with_a_query_or_fragment_is_refused(base_url: str) -> None:
    # Paths are appended to it: after a ? or # they would land in the query or fragment, and
    # every path on the host would be "below" the list's, where a next_page may lead.
    with pytest.raises(ConfigurationError, match=r"base_url .* query string or fragment"):
        AsyncSchedulerAPI(client_secret=SECRET, base_url=base_url)


def test_an_unparseable_base_url() -> None:
    with pytest.raises(ConfigurationError, match="not a valid URL"):
        AsyncSchedulerAPI(client_secret=SECRET, base_url="http://[::1")

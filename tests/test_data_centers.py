from __future__ import annotations

import pytest

from cronofy_async import ConfigurationError, DataCenter

EXPECTED = {
    "us": "https://api.cronofy.com",
    "au": "https://api-au.cronofy.com",
    "ca": "https://api-ca.cronofy.com",
    "de": "https://api-de.cronofy.com",
    "sg": "https://api-sg.cronofy.com",
    "uk": "https://api-uk.cronofy.com",
}


def test_six_data_centers_with_their_urls() -> None:
    assert {dc.value: dc.base_url for dc in DataCenter} == EXPECTED


@pytest.mark.parametrize("dc_id", sorted(EXPECTED))
def test_every_spelling_resolves(dc_id: str) -> None:
    url = EXPECTED[dc_id]
    host = url.removeprefix("https://")
    expected = DataCenter(dc_id)
    for spelling in (dc_id, dc_id.upper(), host, host.upper(), url, url + "/", f" {url} "):
        assert DataCenter(spelling) is expected, spelling


def test_a_member_and_a_str_compare_equal() -> None:
    assert str(DataCenter.UK) == "uk"
    assert "uk" in {DataCenter.UK}
    assert DataCenter(DataCenter.DE) is DataCenter.DE


@pytest.mark.parametrize("value", ["eu", "api-eu.cronofy.com", "https://example.com", "", 3])
def test_unknown_lists_the_valid_ones(value: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        DataCenter(value)  # type: ignore[arg-type]
    message = str(info.value)
    assert repr(value) in message
    for dc_id, url in EXPECTED.items():
        assert repr(dc_id) in message
        assert url.removeprefix("https://") in message
    assert isinstance(info.value, ValueError)

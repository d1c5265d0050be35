"""update_selection_rule and SelectionRule refuse what can never be sent, naming the field."""

from typing import Any

import pytest

from cronofy_async import PayloadError
from cronofy_async.testing import FakeCronofy


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "Support \ud800"},
        {"add": ["doc\ud800@evenitron.com"]},
        {"remove": ["a\udfff@b.co"]},
    ],
    ids=["name", "add", "remove"],
)
async def test_unencodable_update_is_a_payload_error_naming_the_field(
    changes: dict[str, Any],
) -> None:
    fake = FakeCronofy(
        members=["acc_1"], selection_rules={"sel_1": ("S", 1, ["acc_1@example.com"])}
    )
    async with fake.api(rate_limit=None) as api:
        with pytest.raises(PayloadError) as info:
            await api.update_selection_rule("sel_1", **changes)
    assert info.value.field.split(".")[0] in {"name", "members"}
    assert fake.received == 0


def test_selection_rule_members_of_the_wrong_type_is_a_payload_error() -> None:
    from cronofy_async import SelectionRule

    with pytest.raises(PayloadError, match="members"):
        SelectionRule(sub="sel_1", members=None)  # type: ignore[arg-type]

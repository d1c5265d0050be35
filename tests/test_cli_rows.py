"""Reading the batch command's input: formats, line numbers, and what a row asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from cronofy_async import NewSchedulerRequest
from cronofy_async._cli._rows import (
    Defaults,
    InputError,
    Row,
    RowError,
    column_name,
    read_rows,
    survey,
)


def rows(path: Path, **defaults: str) -> list[Row | RowError]:
    return list(read_rows(survey(path), Defaults(**defaults)))


@pytest.mark.parametrize(
    ("content", "jsonl"),
    [
        ('\n  {"email": "a@example.com"}\n', True),
        ("email\na@example.com\n", False),
        ("", False),
    ],
)
def test_the_format_is_sniffed_without_a_known_extension(
    tmp_path: Path, content: str, jsonl: bool
) -> None:
    source = tmp_path / "people.txt"
    source.write_text(content, encoding="utf-8")
    assert survey(source).jsonl is jsonl


def test_csv_rows(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "\ufeffE-Mail , Display Name,Summary,ignored\n"  # a BOM, and names as people write them
        "a@example.com,,Hi,x\n"  # an empty name is no name
        ",,,\n"  # a row of nothing is skipped, not an error
        '"b@example.com","Bob\n Smith",Hi,\n',  # a quoted field over two lines
        encoding="utf-8",
    )
    found = survey(source)
    assert found.rows == 2
    assert [column_name(c) for c in found.columns] == [
        "e_mail",
        "display_name",
        "summary",
        "ignored",
    ]
    first, second = rows(source, host="acc_1")
    assert isinstance(first, RowError)  # "E-Mail" is not "email"
    source.write_text(source.read_text("utf-8").replace("E-Mail", "Email"), encoding="utf-8")
    first, second = rows(source, host="acc_1")
    assert isinstance(first, Row)
    assert isinstance(second, Row)
    assert (first.line, first.invite.display_name, first.invite.summary) == (2, None, "Hi")
    # A record over two lines is named by the line it starts on, where an editor shows it.
    assert (second.line, second.invite.display_name) == (4, "Bob\n Smith")


def test_a_row_that_names_a_host_ignores_the_command_lines(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email,group_rule\na@example.com,sgr_1\nb@example.com,\n", "utf-8")
    first, second = rows(source, host="acc_1", summary="Hi")
    assert isinstance(first, Row)
    assert isinstance(second, Row)
    assert (first.invite.host, first.invite.group_rule) == (None, "sgr_1")
    assert (second.invite.host, second.invite.group_rule) == ("acc_1", None)
    assert isinstance(first.request, NewSchedulerRequest)
    assert first.request.scheduler_group_rule is not None


def test_a_field_too_large_for_csv(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email,name\na@example.com," + "x" * 200_000 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"in.csv: line \d+: not valid CSV: field larger"):
        survey(source)


def test_an_input_that_cannot_be_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in.csv"
    source.write_text("email\n", encoding="utf-8")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(InputError, match=r"in\.csv: cannot read it: Permission denied"):
        survey(source)


def test_blank_lines_before_the_header(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("\n  \nemail,name\na@example.com,Ada\n", encoding="utf-8")
    found = survey(source)
    assert (found.rows, found.columns) == (1, ("email", "name"))
    [row] = rows(source, host="acc_1", summary="Hi")
    assert isinstance(row, Row)
    assert (row.line, row.invite.email, row.invite.display_name) == (4, "a@example.com", "Ada")


def test_a_row_with_more_fields_than_the_header(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "email,display_name\n"
        "a@example.com,Smith, John\n"  # an unquoted comma: " John" must not be dropped
        "b@example.com,Bo\n"
        ",,\n"  # nothing at all, however many commas: skipped
        "c@example.com,Cy,\n",  # a trailing comma holds nothing: nothing is lost
        encoding="utf-8",
    )
    assert survey(source).rows == 3
    smith, bo, cy = rows(source, host="acc_1", summary="Hi")
    assert isinstance(smith, RowError)
    assert smith.line == 2
    assert smith.message == (
        "3 fields, but the header has 2 columns: put a value that holds a comma in double "
        'quotes ("Smith, John")'
    )
    assert isinstance(bo, Row)
    assert isinstance(cy, Row)
    assert (bo.line, cy.line, cy.invite.display_name) == (3, 5, "Cy")

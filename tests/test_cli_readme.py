"""The README's commands and test examples, as a new user would run them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .cli_support import ROOT, cli_env

README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


@pytest.mark.parametrize(
    ("page", "heading"),
    [
        ("README.md", "## Run it"),
        ("README.md", "## Quick start"),
        ("docs/index.md", "## Quick start"),
    ],
)
def test_the_first_install_command_works_from_a_clone(page: str, heading: str) -> None:
    # cronofy-async is not on the package index yet: the command shown first installs the clone.
    [first, *_] = blocks(section((ROOT / page).read_text(encoding="utf-8"), heading), "console")
    installs = [line for line in first.splitlines() if "pip install" in line]
    assert installs
    assert all(re.search(r"pip install '?\.(\[|'| |$)", line) for line in installs), installs
    text = section((ROOT / page).read_text("utf-8"), heading).lower()
    assert re.search(r"once (cronofy-async is )?released", text)  # the index form, for later


def run_pytest(tmp_path: Path, code: str, config: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_invites.py").write_text(code, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text(f"[pytest]\n{config}", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_invites.py"],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_test_file_passes_in_pytest_asyncios_default_mode(tmp_path: Path) -> None:
    [code] = [block for block in blocks(README, "python") if "def test_with_respx" in block]
    done = run_pytest(tmp_path, code, "")  # strict mode: pytest-asyncio's default
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_the_readme_respx_example_mocks_the_data_center_it_uses() -> None:
    [code] = [block for block in blocks(README, "python") if "def test_with_respx" in block]
    [center] = re.findall(r'data_center="(\w+)"', code)
    [host] = re.findall(r"https://([\w.-]+)/v1/scheduler_requests", code)
    assert host == f"api-{center}.cronofy.com"


def test_the_testing_pages_test_runs_as_that_page_says(tmp_path: Path) -> None:
    page = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    assert 'asyncio_mode = "auto"' in page
    [code] = [block for block in blocks(page, "python") if "async def test_" in block][:1]
    done = run_pytest(tmp_path, code, "asyncio_mode = auto\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout

"""Every code block in the docs that is a complete program runs, so the docs cannot drift."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def programs() -> list[tuple[str, str]]:
    """``(where, code)`` for each Python block that runs itself (calls ``asyncio.run``)."""
    found = []
    for page in sorted(DOCS.glob("*.md")):
        for number, code in enumerate(BLOCK.findall(page.read_text(encoding="utf-8")), start=1):
            if "asyncio.run(" in code:
                found.append((f"{page.name} block {number}", code))
    return found


def test_the_docs_have_programs_to_run() -> None:
    assert any(where.startswith("index.md") for where, _ in programs())


@pytest.mark.real_time  # a fresh interpreter, a fake on loopback, default pacing
@pytest.mark.parametrize(("where", "code"), programs(), ids=[w for w, _ in programs()])
def test_a_docs_program_runs(where: str, code: str, tmp_path: Path) -> None:
    script = tmp_path / "program.py"
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(  # noqa: S603 - our own docs, our own interpreter
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"{where} failed:\n{done.stderr}"

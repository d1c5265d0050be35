"""Development tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``docs``, ``bench``."""

from __future__ import annotations

import nox

nox.needs_version = ">=2025.2.9"
nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage of the package."""
    session.install("-e", ".[cli]", *nox.project.dependency_groups(PYPROJECT, "tests"))
    session.run(
        "pytest",
        "--cov=cronofy_async",
        "--cov-branch",
        "--cov-report=term-missing:skip-covered",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (no changes made)."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Run mypy --strict on everything, and pyright (basic) on the package."""
    session.install("-e", ".[cli]", *nox.project.dependency_groups(PYPROJECT, "typecheck"))
    session.run("mypy", "--strict", "cronofy_async", "tests", "bench", "examples")
    session.run("pyright")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmark suite; writes docs/benchmarks.md and docs/benchmarks.png."""
    session.install("-e", ".[cli]", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "-m", "bench.run", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site; any warning (a broken link or reference) fails it."""
    session.install("-e", ".[cli]", *nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})

"""nox sessions: tests per package, the whole suite, lint, types, docs and benchmarks.

    nox -l                 list sessions
    nox -s tests-sqlite    core + sitq-sqlite, that package's tests
    nox -s tests           everything, as CI runs it
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests"]

TEST_TOOLS = ["pytest>=8", "pytest-timeout>=2.2", "hypothesis>=6.80"]
DOCS_REQUIREMENTS = "docs/requirements.txt"


def _install(session: nox.Session, *packages: str) -> None:
    """Install the named sitq folders (editable) and the test tools."""
    session.install(*TEST_TOOLS)
    for package in packages:
        session.install("-e", f"./{package}")


@nox.session(name="tests-core")
def tests_core(session: nox.Session) -> None:
    """sitq-core's cross-package tests (tests/), on the SQLite and memory backends."""
    _install(session, "sitq-core", "sitq-sqlite", "sitq-memory")
    session.install("prometheus_client", "hatchling", "editables", "-r", DOCS_REQUIREMENTS)
    session.run("pytest", "tests", "sitq-prometheus/tests", *session.posargs)


@nox.session(name="tests-sqlite")
def tests_sqlite(session: nox.Session) -> None:
    """sitq-sqlite with only the core installed beside it (conformance kit included)."""
    _install(session, "sitq-core", "sitq-sqlite")
    session.run("pytest", "sitq-sqlite/tests", *session.posargs)


@nox.session(name="tests-memory")
def tests_memory(session: nox.Session) -> None:
    """sitq-memory with only the core installed beside it (conformance kit included)."""
    _install(session, "sitq-core", "sitq-memory")
    session.run("pytest", "sitq-memory/tests", *session.posargs)


@nox.session(name="tests-postgres")
def tests_postgres(session: nox.Session) -> None:
    """sitq-postgres against the server at 127.0.0.1:5432 (conformance kit included)."""
    _install(session, "sitq-core", "sitq-postgres")
    session.run("pytest", "sitq-postgres/tests", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, installed exactly as the README's test command installs it."""
    session.install("-r", "requirements-dev.txt")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and formatting."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def types(session: nox.Session) -> None:
    """mypy --strict over every distribution."""
    session.install("mypy>=1.10", "pytest>=8", "hypothesis>=6.80", "prometheus_client")
    for package in ("sitq-core", "sitq-sqlite", "sitq-memory", "sitq-postgres"):
        session.install("-e", f"./{package}")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors."""
    session.install("-r", DOCS_REQUIREMENTS)
    for package in ("sitq-core", "sitq-sqlite", "sitq-memory", "sitq-postgres"):
        session.install("-e", f"./{package}")
    session.run("mkdocs", "build", "--strict", "--site-dir", "docs/_build")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks against Huey and raw sqlite3, printed as ratios (not part of CI)."""
    for package in ("sitq-core", "sitq-sqlite", "sitq-memory"):
        session.install(f"./{package}")
    session.install("-r", "bench/requirements.txt")
    session.run("python", "bench/run.py", "--quick", *session.posargs)

"""Development sessions for the sitq monorepo: ``nox -l`` lists them, ``nox -s NAME`` runs one.

* ``tests`` — installed as the README's test command installs it (``requirements-dev.txt``),
  the whole suite: what ``.ci/run`` runs.
* ``tests-core``, ``tests-sqlite``, ``tests-memory``, ``tests-postgres``, ``tests-web`` —
  sitq-core alone, or with that one plugin, in a venv of its own (sitq-web's on sitq-sqlite):
  the package's own tests plus the top-level tests marked for no other plugin
  (``-m "not needs_memory and ..."``). They prove each plugin works with the core alone and
  the core with none.
* ``lint`` (ruff check and format), ``types`` (mypy), ``docs`` (strict build, the rendered
  pages checked and every doc example run), ``docs_screenshots`` (headless-Chromium pictures of
  the built site for the README), ``bench`` (the quick benchmark run; it prints ratios and never
  fails on them).

Extra arguments go to the tool: ``nox -s tests -- -k plugins -x``.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["lint", "types", "tests"]

ROOT = Path(__file__).resolve().parent
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.2", "hypothesis>=6.80", "hatchling>=1.18")

#: Each distribution's folder, by the name the sessions use.
PACKAGES = {
    "core": "sitq-core",
    "sqlite": "sitq-sqlite",
    "memory": "sitq-memory",
    "postgres": "sitq-postgres",
    "prometheus": "sitq-prometheus",
    "otel": "sitq-otel",
    "web": "sitq-web",
}

#: The extras installed with a distribution: what its tests and docs examples need besides it.
EXTRAS = {"otel": "[testing]", "web": "[testing]"}

#: Other distributions a package's own tests use beside it (sitq-postgres's tests compare
#: with the memory backend; sitq-web's run on SQLite files).
TESTED_WITH = {"postgres": ("memory",), "web": ("sqlite",)}


def install(session: nox.Session, *names: str, editable: bool = True) -> None:
    """Install the named distributions (``core``, ``sqlite``, …) from their folders."""
    folders = [f"{ROOT / PACKAGES[name]}{EXTRAS.get(name, '')}" for name in names]
    if editable:
        session.install(*(arg for folder in folders for arg in ("-e", folder)))
    else:
        session.install(*folders)


def run_package_tests(session: nox.Session, plugin: str | None) -> None:
    """Core plus at most one plugin: that package's tests and the top-level ones that need no
    other plugin. Top-level modules mark the plugins they use (``pytestmark =
    [pytest.mark.needs_sqlite]``, checked by ``tests/conftest.py``); ``-m`` leaves out the
    marks of every other plugin."""
    names = ["core"] + ([plugin] if plugin else [])
    install(session, *names, *TESTED_WITH.get(plugin or "core", ()))
    session.install(*TEST_TOOLS)
    paths = [
        f"{PACKAGES[name]}/tests" for name in names if (ROOT / PACKAGES[name] / "tests").is_dir()
    ]
    others = [name for name in PACKAGES if name not in names and name != "core"]
    session.chdir(ROOT)
    session.run(
        "pytest", *paths, "tests", "-m", " and ".join(f"not needs_{name}" for name in others),
        *session.posargs,
    )  # fmt: skip


@nox.session(name="tests-core")
def tests_core(session: nox.Session) -> None:
    """sitq-core alone: the tests that need no backend plugin."""
    run_package_tests(session, None)


@nox.session(name="tests-sqlite")
def tests_sqlite(session: nox.Session) -> None:
    """sitq-core + sitq-sqlite: the SQLite backend's tests and conformance kit, and the
    top-level tests that need only SQLite."""
    run_package_tests(session, "sqlite")


@nox.session(name="tests-memory")
def tests_memory(session: nox.Session) -> None:
    """sitq-core + sitq-memory: the memory backend's tests and conformance kit, and the
    top-level tests that need only memory."""
    run_package_tests(session, "memory")


@nox.session(name="tests-postgres")
def tests_postgres(session: nox.Session) -> None:
    """sitq-core + sitq-postgres against the server at 127.0.0.1:5432 (conformance kit
    included)."""
    run_package_tests(session, "postgres")


@nox.session(name="tests-web")
def tests_web(session: nox.Session) -> None:
    """sitq-core + sitq-web (on sitq-sqlite): the dashboard's tests."""
    run_package_tests(session, "web")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, installed as the README's test command installs it (PostgreSQL tests
    skip when no server runs, except with CI set)."""
    session.chdir(ROOT)
    session.install("-r", "requirements-dev.txt")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: the linter and the formatter, in check mode."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", str(ROOT), *session.posargs)
    session.run("ruff", "format", "--check", str(ROOT))


#: The test folders mypy checks, each in a run of its own: their helpers import one another
#: by plain name (``from pg_support import ...``), as pytest puts each folder on ``sys.path``,
#: and two of them have a ``conftest.py``, which one run would take for one module.
TEST_FOLDERS = ["tests"] + [
    f"{folder}/tests" for folder in PACKAGES.values() if (ROOT / folder / "tests").is_dir()
]


@nox.session
def types(session: nox.Session) -> None:
    """mypy, strict, over every package and every test folder (config in pyproject.toml).

    The tests are checked without ``warn_unreachable``: they assert a property, call what
    changes it and assert it again, and mypy keeps the first narrowing across the call.
    ``tests/typing/`` holds deliberate type errors: ``tests/test_task_typing.py`` checks it.
    ``nox --no-venv --no-install -s types`` runs it in the current environment (pre-commit)."""
    install(session, *PACKAGES)
    session.install("mypy>=1.10", "pytest>=8", "hypothesis>=6.80", "prometheus_client>=0.17")
    session.chdir(ROOT)
    session.run("mypy", *session.posargs)
    for folder in TEST_FOLDERS:
        # a subfolder with a conftest.py of its own (sitq-web's browser tests) is checked on
        # its own: two conftest modules cannot share one mypy run
        nested = [
            str(c.parent.relative_to(ROOT)) for c in sorted((ROOT / folder).glob("*/conftest.py"))
        ]
        for part in [folder, *nested]:
            excluded = ["^tests/typing/", *(f"^{n}/" for n in nested if n != part)]
            session.run(
                "mypy", "--explicit-package-bases", "--no-warn-unreachable",
                "--exclude", "|".join(excluded), *session.posargs, part,
                env={"MYPYPATH": part},
            )  # fmt: skip


@nox.session
def docs(session: nox.Session) -> None:
    """Build the docs with every warning an error and check the rendered pages
    (tests/test_docs_render.py), then run every code example in them (tests/test_docs.py)."""
    install(session, *PACKAGES)
    session.install("-r", str(ROOT / "docs" / "requirements.txt"), *TEST_TOOLS)
    session.chdir(ROOT)
    session.run("pytest", "tests/test_docs_render.py", "tests/test_docs.py", *session.posargs)


#: Chromium from the distribution's packages (``apt-get install -y chromium``).
CHROMIUM = "/usr/bin/chromium"

#: What ``docs_screenshots`` photographs: a page of the built site → its picture in docs/images/,
#: with the extra Chromium flags of that picture.
SCREENSHOTS = {
    "index.html": ("home.png", ()),
    "guides/declared-tasks/index.html": ("guide.png", ()),
    "reference/api/worker/index.html": ("reference.png", ()),
    "migrate/from-celery/index.html": ("migrate-dark.png", ("--force-dark-mode",)),
}


@nox.session(name="docs_screenshots")
def docs_screenshots(session: nox.Session) -> None:
    """Build the site and take headless-Chromium screenshots of the home page, a guide, a
    reference page and a migration page in dark mode into docs/images/ (shown in the README).

    Needs Chromium at /usr/bin/chromium (``apt-get update && apt-get install -y chromium``).
    The pages are opened from the built files: the site loads nothing from the network."""
    if not Path(CHROMIUM).is_file():
        session.error(f"no {CHROMIUM}: apt-get update && apt-get install -y chromium")
    install(session, *PACKAGES)
    session.install("-r", str(ROOT / "docs" / "requirements.txt"))
    site = Path(session.create_tmp()).resolve() / "site"
    session.chdir(ROOT)
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site))
    images = ROOT / "docs" / "images"
    images.mkdir(exist_ok=True)
    # Chromium refuses to run as root inside its sandbox.
    sandbox = ("--no-sandbox",) if os.geteuid() == 0 else ()
    for page, (image, flags) in SCREENSHOTS.items():
        session.run(
            CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", *sandbox, *flags,
            "--window-size=1280,900", f"--screenshot={images / image}", (site / page).as_uri(),
            external=True,
        )  # fmt: skip


@nox.session
def bench(session: nox.Session) -> None:
    """The quick benchmark run: sitq against its baselines, printed as ratios."""
    install(session, "core", "sqlite", "memory", editable=False)
    session.install("-r", str(ROOT / "bench" / "requirements.txt"))
    session.run("python", "bench/run.py", "--quick", *session.posargs)

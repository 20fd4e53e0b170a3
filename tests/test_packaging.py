"""The packaging habits every distribution shares: one license text, the same classifiers and
project URLs, a version read from one file, and a ``py.typed`` marker in the package."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ROOT = Path(__file__).resolve().parents[1]
#: Each distribution's folder → its import package.
DISTRIBUTIONS = {
    "sitq-core": "sitq",
    "sitq-sqlite": "sitq_sqlite",
    "sitq-memory": "sitq_memory",
    "sitq-postgres": "sitq_postgres",
    "sitq-prometheus": "sitq_prometheus",
    "sitq-otel": "sitq_otel",
    "sitq-web": "sitq_web",
}
#: Every folder with a pyproject.toml that is published: the distributions and the ``sitq``
#: meta-distribution (no package of its own).
PUBLISHED = [*DISTRIBUTIONS, "sitq"]
URL_NAMES = ["Homepage", "Documentation", "Source", "Changelog"]


def project_table(folder: str) -> dict[str, Any]:
    with (ROOT / folder / "pyproject.toml").open("rb") as file:
        table: dict[str, Any] = tomllib.load(file)["project"]
    return table


@pytest.mark.parametrize("folder", PUBLISHED)
def test_each_distribution_ships_the_top_level_license(folder: str) -> None:
    assert (ROOT / folder / "LICENSE").read_text() == (ROOT / "LICENSE").read_text(), (
        f"{folder}/LICENSE differs from the top-level LICENSE: copy it over again"
    )
    assert project_table(folder)["license-files"] == ["LICENSE"]


@pytest.mark.parametrize("folder", PUBLISHED)
def test_each_distribution_has_the_shared_classifiers_and_urls(folder: str) -> None:
    project = project_table(folder)
    assert project["classifiers"] == project_table("sitq-core")["classifiers"]
    assert "Typing :: Typed" in project["classifiers"]
    assert list(project["urls"]) == URL_NAMES
    assert all(url.startswith("https://github.com/sitq/sitq") for url in project["urls"].values())


@pytest.mark.parametrize(("folder", "package"), DISTRIBUTIONS.items())
def test_each_version_is_written_once_and_each_package_is_typed(folder: str, package: str) -> None:
    assert project_table(folder)["dynamic"] == ["version"]
    assert (ROOT / folder / "src" / package / "_version.py").is_file()
    assert (ROOT / folder / "src" / package / "py.typed").is_file()

"""The documentation site builds with every warning an error, and its pages render.

The site is built once for the module (``mkdocs build --strict``, about as long as the rest
of the docs tests together); each test reads the built HTML: titles and navigation, code
highlighted by Pygments at build time, the theme's features, the reference pages, and not one
``<script>`` or ``<link>`` that reaches the network, so the site works offline.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

# The site documents, and its reference renders, every distribution of the repository.
pytestmark = [
    pytest.mark.needs_sqlite,
    pytest.mark.needs_memory,
    pytest.mark.needs_postgres,
    pytest.mark.needs_prometheus,
    pytest.mark.needs_otel,
]

ROOT = Path(__file__).resolve().parents[1]
BUILD_TIMEOUT = 300
DISTRIBUTIONS = [p.parent.name for p in sorted(ROOT.glob("sitq-*/CHANGELOG.md"))]


class Assets(HTMLParser):
    """The URLs a page's ``<script src>`` and ``<link href>`` tags load, and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.urls.append(found["src"] or "")
        if tag == "link" and found.get("href"):
            self.urls.append(found["href"] or "")
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def read(page: Path) -> Assets:
    parser = Assets()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once with ``--strict``; a warning fails the build (and every test)."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "pymdownx"):
        assert importlib.util.find_spec(module), (
            "the docs toolchain: pip install -r docs/requirements.txt"
        )
    folder = tmp_path_factory.mktemp("site")
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        # Recent Material releases print an end-of-life notice about MkDocs 2 (with "WARNING" in
        # its text) on every build; it is no warning about this site.
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert built.returncode == 0, built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    return folder


def test_docs_build_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()


def test_pages_have_a_title_and_the_navigation(site: Path) -> None:
    home = (site / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<title>sitq</title>", home)
    guide = (site / "guides" / "retries" / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<title>Retries and failures - sitq</title>", guide)
    for page in (home, guide):
        assert 'class="md-nav' in page
        for link in ("quickstart/", "migrate/from-celery/", "frameworks/fastapi/"):
            assert f'href="{link}"' in page or f'href="../../{link}"' in page


def test_code_is_highlighted_at_build_time(site: Path) -> None:
    quickstart = (site / "quickstart" / "index.html").read_text(encoding="utf-8")
    # Pygments' token spans, written into the page: no highlighter runs in the browser.
    tokens = r'<div class="language-python highlight"><pre>.*<span class="kn">from</span>'
    assert re.search(tokens, quickstart, re.DOTALL)
    assert "highlight.js" not in quickstart and "prism" not in quickstart.lower()


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 30
    remote = {
        f"{page.relative_to(site)}: {url}"
        for page in pages
        for url in read(page).urls
        if re.match(r"^(https?:)?//", url)
    }
    assert not remote, "pages load from the network (a CDN, fonts):\n" + "\n".join(sorted(remote))


def test_theme_features(site: Path) -> None:
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'data-md-component="palette"' in home  # the light/dark toggle
    assert "content.code.copy" in home  # a copy button on every code block
    assert 'href="https://github.com/sitq/sitq"' in home  # repo_url
    celery = (site / "migrate" / "from-celery" / "index.html").read_text(encoding="utf-8")
    assert 'class="tabbed-set' in celery  # content tabs: Celery | sitq


def test_reference_pages_render_their_api(site: Path) -> None:
    pages = {
        "reference/api/errors": "SitqError",
        "reference/api/context": "TaskContext",
        "reference/api/serializers": "JsonSerializer",
        "reference/api/queue": "SyncTaskQueue",
    }
    for path, name in pages.items():
        html = (site / path / "index.html").read_text(encoding="utf-8")
        assert 'id="sitq.' in html and name in html, path
    queue = (site / "reference" / "api" / "queue" / "index.html").read_text(encoding="utf-8")
    assert 'doc-signature highlight"' in queue  # signatures formatted apart


def test_no_restructuredtext_literal_marker_leaks(site: Path) -> None:
    leaks = [
        str(page.relative_to(site))
        for page in sorted((site / "reference").rglob("*.html"))
        if re.search(r"::\s*$", "".join(read(page).text), re.MULTILINE)
    ]
    assert not leaks, f"a docstring's `::` shows as text in {leaks}: end with `:`, fence the block"


def test_changelogs_are_in_the_site(site: Path) -> None:
    for name in DISTRIBUTIONS:
        html = (site / "changelogs" / name / "index.html").read_text(encoding="utf-8")
        assert "Unreleased" in html or re.search(r"<h2[^>]*>\d", html), name


def test_the_bench_figures_are_on_the_home_page(site: Path) -> None:
    """docs/snippets/bench.md (written by hand or by ``bench/run.py --markdown``) is included."""
    figures = (ROOT / "docs" / "snippets" / "bench.md").read_text(encoding="utf-8")
    prose = re.sub(r"<!--.*?-->", "", figures, flags=re.DOTALL)
    first = next(line for line in prose.splitlines() if line.strip())
    words = re.sub(r"[*_`|#]", " ", first).split()[:4]
    home = " ".join("".join(read(site / "index.html").text).split())
    assert " ".join(words) in home, f"the home page lacks docs/snippets/bench.md: {words}"

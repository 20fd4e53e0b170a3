"""Every code example in docs/ runs (the site's build is checked in test_docs_render.py).

A fence can be marked by an HTML comment on the line before it (invisible in the rendered
docs), ``<!-- docs-test: FLAGS -->``. How a page is run, in a fresh temporary folder with no
``SITQ_*`` variables set:

1. each ``python`` block marked ``file=NAME`` is written to ``NAME`` (a module the page's
   other code, or a worker, imports);
2. each ``bash`` block marked ``background`` is started in the background (``sitq worker
   …``) and stopped with SIGTERM once the page has run;
3. all other ``python`` blocks, in page order, run as one script (later blocks see what
   earlier ones defined), with a timeout;
4. each ``bash`` block marked ``run`` runs after that, and must exit 0.

``no-run`` marks the rare ``python`` block that cannot run on its own; ``not-sitq`` marks
another library's code, shown beside sitq's on the migration pages (docs/migrate/) and never
run; unmarked ``bash`` blocks (installing, for instance) are shown, not run. A fence may be
indented, inside a content tab (``=== "sitq"``): it is read without its indentation.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.needs_sqlite,
    pytest.mark.needs_memory,
    pytest.mark.needs_postgres,
    pytest.mark.needs_prometheus,
    pytest.mark.needs_otel,
]

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGE_TIMEOUT = 60
FENCE = re.compile(
    r"(?:^[ ]*<!-- docs-test: ([^\n]*?) -->\n)?^([ ]*)```([^\n`]*)\n(.*?)^\2```[ ]*$",
    re.DOTALL | re.MULTILINE,
)

#: The only folder whose pages may show another library's code (``not-sitq`` blocks).
OTHER_LIBRARIES_FOLDER = "migrate"


@dataclass
class Page:
    """The runnable parts of one Markdown page."""

    files: dict[str, str] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)
    background: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    not_run: int = 0
    not_sitq: int = 0


#: The table prefix the PostgreSQL pages use on the test server (their tables outlive a run).
DOCS_PREFIX = "table_prefix=docs_"


def drop_docs_tables() -> None:
    """Drop what an earlier run of the PostgreSQL pages left, perhaps at another schema
    version (a run of another sitq version), so each run starts from an empty prefix."""
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        try:
            rows = await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename LIKE 'docs\\_%'"
            )
            for row in rows:
                await conn.execute(f'DROP TABLE IF EXISTS "{row[0]}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


def parse(path: Path) -> Page:
    """Sort a page's fenced blocks by what the harness does with them."""
    page = Page()
    for marks, indent, info, indented_body in FENCE.findall(path.read_text()):
        if not info.strip():
            continue
        body = "".join(line.removeprefix(indent) for line in indented_body.splitlines(True))
        language, flags = info.split()[0], marks.split()
        if "not-sitq" in flags:
            page.not_sitq += 1
        elif language == "python":
            if "no-run" in flags:
                page.not_run += 1
            elif any(f.startswith("file=") for f in flags):
                name = next(f for f in flags if f.startswith("file="))[len("file=") :]
                page.files[name] = body
            else:
                page.script.append(body)
        elif language in ("bash", "console") and "background" in flags:
            page.background.append(body.strip())
        elif language in ("bash", "console") and "run" in flags:
            page.commands.append(body.strip())
    return page


PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
RUNNABLE = [p for p in PAGES if parse(p).script or parse(p).commands]


def environment(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(folder)
    env["COLUMNS"] = "120"
    return env


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        _, err = process.communicate()
    return err


@pytest.mark.parametrize("path", RUNNABLE, ids=[str(p.relative_to(DOCS)) for p in RUNNABLE])
def test_page_examples_run(path: Path, tmp_path: Path) -> None:
    page = parse(path)
    env = environment(tmp_path)
    if DOCS_PREFIX in path.read_text():
        drop_docs_tables()
    for name, body in page.files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    started = [
        subprocess.Popen(shlex.split(command), cwd=tmp_path, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        for command in page.background
    ]  # fmt: skip
    try:
        if page.script:
            script = tmp_path / "page_examples.py"
            script.write_text("\n\n".join(page.script))
            began = time.monotonic()
            result = subprocess.run(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=PAGE_TIMEOUT,
            )
            assert result.returncode == 0, (
                f"the examples of {path.relative_to(ROOT)} failed after "
                f"{time.monotonic() - began:.1f} s:\n{result.stdout}\n{result.stderr}"
            )
        for command in page.commands:
            done = subprocess.run(["bash", "-e", "-c", command], cwd=tmp_path, env=env, text=True,
                                  capture_output=True, timeout=PAGE_TIMEOUT)  # fmt: skip
            assert done.returncode == 0, f"`{command}` failed:\n{done.stdout}\n{done.stderr}"
    finally:
        errors = [stop(p) for p in started]
    for process, err in zip(started, errors, strict=True):
        assert process.returncode == 0, f"background command failed:\n{err}"


def test_few_blocks_are_marked_no_run() -> None:
    runnable = sum(len(parse(p).script) + len(parse(p).files) for p in PAGES)
    not_run = sum(parse(p).not_run for p in PAGES)
    assert runnable > 30
    assert not_run <= 3, "examples must run; mark a block `no-run` only when it cannot"


def test_only_migration_pages_show_other_libraries_code() -> None:
    showing = {p.relative_to(DOCS).parts[0] for p in PAGES if parse(p).not_sitq}
    assert showing <= {OTHER_LIBRARIES_FOLDER}, (
        f"`not-sitq` blocks are not run: only docs/{OTHER_LIBRARIES_FOLDER}/ may show them"
    )


def test_fences_in_content_tabs_are_read() -> None:
    page = parse(DOCS / "migrate" / "from-celery.md")
    assert page.not_sitq == 2  # the same task, and periodic tasks
    assert "proj.py" in page.files and not page.files["proj.py"].startswith(" ")
    assert page.background == ["sitq worker proj:queue -c 4"]

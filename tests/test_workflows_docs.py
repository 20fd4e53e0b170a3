"""The workflows guide (docs/guides/workflows.md): its chain, group and chord examples are run
code, not prose. ``test_docs.py`` runs every page; this module checks that the guide's run
blocks are the ones showing each shape, that it states its rules and sources, and runs the
page's script once more on its own, as a reader would paste it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import DOCS, environment, parse

pytestmark = [pytest.mark.needs_memory]

GUIDE = DOCS / "guides" / "workflows.md"


def test_each_shape_is_shown_in_code_that_runs() -> None:
    page = parse(GUIDE)
    script = "\n".join(page.script)
    for shape in ("sitq.chain(", "sitq.group(", "sitq.chord(", "depends_on=", "allow_failure="):
        assert shape in script, f"{shape} is not in a block the docs tests run"
    assert "pipeline.py" in page.files


def test_the_guide_states_its_rules_and_is_in_the_nav() -> None:
    text = GUIDE.read_text()
    for issue in ("#1700", "#2922", "#3535", "#6029"):
        assert issue in text
    for rule in ("exact-join rule", "cancels its descendants", "Retrying resumes"):
        assert rule in text
    nav = (DOCS.parent / "mkdocs.yml").read_text()
    assert "guides/workflows.md" in nav


def test_the_guide_runs_as_one_script(tmp_path: Path) -> None:
    page = parse(GUIDE)
    for name, body in page.files.items():
        (tmp_path / name).write_text(body)
    script = tmp_path / "guide.py"
    script.write_text("\n".join(page.script))
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr

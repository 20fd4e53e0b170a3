"""What the browser tests stand on: the Chromium they drive (skip or fail when it is missing),
the dashboard served on a free port, a real ``sitq worker`` process, and waiting for the
store to show something."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

#: Chromium from the distribution's packages (``apt-get install -y chromium``; `.ci/run` does
#: it): Playwright's own browser download cannot work here, so it is pointed at this binary.
CHROMIUM = os.environ.get("SITQ_TEST_CHROMIUM", "/usr/bin/chromium")
#: The size of every page and screenshot.
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
#: Where `screenshot_folder` puts the pictures when asked to refresh the docs' ones.
DOCS_IMAGES = Path(__file__).resolve().parents[3] / "docs" / "images" / "web"
#: Longest wait for anything the tests expect to happen (a worker claiming, a page updating):
#: a bound on a hang, far above what any machine needs, never a timing assert.
PATIENCE = 60.0


def require_chromium() -> None:
    """Skip the calling test module where Chromium or Playwright is missing; fail it in CI,
    where `.ci/run` installs both. Called before the module imports Playwright."""
    problem = None
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        problem = f"no Chromium at {CHROMIUM} (apt-get update && apt-get install -y chromium)"
    elif not _playwright_installed():
        problem = "Playwright for Python is not installed (pip install -r requirements-dev.txt)"
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem, allow_module_level=True)


def _playwright_installed() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def screenshot_folder(tmp: Path) -> Path:
    """Where the tests save their screenshots: ``docs/images/web/`` when
    ``SITQ_TEST_SCREENSHOTS=1`` (to refresh the pictures the docs show), else ``tmp``."""
    if os.environ.get("SITQ_TEST_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp


@contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn in a thread on a free port of 127.0.0.1; yields its
    base URL (``http://127.0.0.1:PORT``) and stops the server afterwards."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard-server", daemon=True)
    thread.start()
    wait_until(lambda: server.started or not thread.is_alive(), "the dashboard server to start")
    assert server.started, "the dashboard server stopped before it started (see its log)"
    (port,) = {sock.getsockname()[1] for s in server.servers for sock in s.sockets}
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(PATIENCE)


@contextmanager
def worker_process(
    folder: Path, app: str, *options: str, **environ: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``sitq worker APP`` process started in ``folder`` (so ``APP``'s module is found
    there), with ``environ`` and none of the ``SITQ_*`` settings of this shell; its log is
    ``worker.log``. It is stopped with SIGTERM afterwards (killed if it does not stop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITQ_")}
    env.pop("PYTHONPATH", None)
    env.update(environ)
    with open(folder / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sitq", "worker", app, *options],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: "started:" in worker_log(folder) or proc.poll() is not None,
            "the worker to start",
        )
        assert proc.poll() is None, f"the worker exited:\n{worker_log(folder)}"
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(PATIENCE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(PATIENCE)


def worker_log(folder: Path) -> str:
    """What the worker started by `worker_process` in ``folder`` has written so far."""
    return (folder / "worker.log").read_text(errors="replace")


def wait_until(condition: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Return once ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)

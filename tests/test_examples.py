"""Every example of the workers guide runs as a script, and prints what it should."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.needs_sqlite, pytest.mark.needs_memory]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "workers"

#: example file → regular expressions its standard output must match (in any order)
EXPECTED: dict[str, list[str]] = {
    "01_basic_usage.py": [r"^Task enqueued: [0-9a-f]{32}$", r"^Processed: test_data$"],
    "02_start_stop.py": [
        r"^Worker running: True$",
        r"^Worker running: False$",
        r"^Hello, workers!$",
    ],
    "03_continuous.py": [
        r"^After run\(duration=1\): 9$",
        r"^Worker stopped by user$",
        r"^Second task: (succeeded|pending)$",
    ],
    "04_configuration.py": [r"^Succeeded: 3$", r"^Still pending: 2$"],
    "05_concurrency.py": [
        r"^Thread worker: 4 fetches in [\d.]+ s",
        r"^Process worker: 4 tasks ran in 2 child processes$",
        r"^Parent process among them: False$",
    ],
    "06_single_task.py": [r"^Task succeeded: 4$"],
    "07_batch.py": [
        r"^Task [0-9a-f]{32}: 5\.0$",
        r"^Task [0-9a-f]{32} failed: ZeroDivisionError: division by zero$",
        r"^Task [0-9a-f]{32}: 3\.0$",
    ],
    "08_discovery.py": [r"^Run order: high, medium, low, enqueued while running$"],
    "09_error_handling.py": [
        r"^Final result: True$",
        r"^Attempts: 4, error: ValueError: Intentional failure$",
        r"^Success: data$",
    ],
    "10_callbacks.py": [
        r"^Task [0-9a-f]{32} succeeded: 42$",
        r"^Task [0-9a-f]{32} failed \(attempt 1\): invalid literal",
        r"^Task [0-9a-f]{32} failed \(attempt 2\): invalid literal",
    ],
    "11_pooling.py": [
        r"^Tasks done: 40 of 40$",
        r"^Runs counted across workers: 40$",
        r"^Tasks processed per worker add up: 40$",
    ],
    "12_resources.py": [r"^Result within limits: 2$", r"^Unfinished task after stop: pending$"],
    "13_status.py": [
        r"^Worker running: True$",
        r"^Current task is the first one: True$",
        r"^Worker running: False$",
        r"^Tasks processed: 3$",
        r"^Tasks failed: 1$",
        r"^Current task: None$",
        r"^Uptime: [\d.]+ s$",
    ],
    "14_metrics.py": [
        r"^Average task duration: [\d.]+ s$",
        r"^Tasks per second: [\d.]+$",
        r"^Success rate: 0\.75$",
        r"^Error rate: 0\.25$",
    ],
    "15_logging.py": [
        r"^my_worker INFO worker \S+ started: async x100",
        r"^my_worker INFO task [0-9a-f]{32} __main__:greet succeeded in [\d.]+ s$",
        r"^my_worker ERROR task [0-9a-f]{32} __main__:broken failed \(attempt 1\)",
        r"^RuntimeError: something broke$",  # the stack trace
        r"^my_worker INFO worker \S+: 2 tasks, [\d.]+ tasks/s",  # a performance line
    ],
    "16_specialized.py": [
        r"^cat\.png resized to 200px$",
        r"^Task type not supported by this worker$",
        r"^dog\.png resized to 100px$",
        r"^Email task: pending$",
        r"^email sent to ann@example\.com$",
    ],
    "17_serialization.py": [
        r"^Result read back by the queue: \{'count': 4, 'total': 10\}$",
        r"^ConfigurationError: serializer=<object object at",
    ],
}


def test_every_example_is_checked() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def _run(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if name != "03_continuous.py":
        return subprocess.run(
            [sys.executable, str(EXAMPLES / name)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
        )
    # "Run until interrupted": press Ctrl-C once the worker says it is running
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "press Ctrl-C" in line:
                time.sleep(0.5)
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines) + out, err)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_what_it_should(name: str, tmp_path: Path) -> None:
    done = _run(name, tmp_path)
    assert done.returncode == 0, done.stderr
    for pattern in EXPECTED[name]:
        assert re.search(pattern, done.stdout, re.MULTILINE), (
            f"{name}: no line matches {pattern!r} in:\n{done.stdout}\n{done.stderr}"
        )
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran

"""What the conformance kit and the `Backend` base class tell a plugin author: a backend
reading the wall clock is told to read ``self.clock()``, a failing test names its part of the
contract, claims are checked across real processes, ``repr`` shows the URL (password hidden),
and the reference renders the contract's attributes."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from subprocess_env import clean_environment

from sitq.backend import Backend, TaskRecord
from sitq.conformance import FakeClock
from sitq.conformance.kit import CrossProcessClaimTests
from sitq.conformance.kit.diagnosis import reads_wall_clock, wall_clock_message
from sitq.task import TaskStatus
from sitq.urls import redact_url
from sitq_memory import MemoryBackend
from sitq_sqlite import SQLiteBackend

pytestmark = [pytest.mark.needs_memory, pytest.mark.needs_sqlite]

ROOT = Path(__file__).resolve().parents[1]

WALL_CLOCK_KIT = '''
import time

from sitq.conformance import BackendConformance
from sitq_memory import MemoryBackend


class WallClockBackend(MemoryBackend):
    """A MemoryBackend that reads time.time(), whatever clock it is given."""

    @property
    def clock(self):
        return time.time

    @clock.setter
    def clock(self, value):
        pass


class TestWallClockConformance(BackendConformance):
    async def make_backend(self, tmp_path):
        return WallClockBackend()
'''


def test_a_wall_clock_backend_fails_the_kit_told_to_read_its_clock(tmp_path: Path) -> None:
    (tmp_path / "test_wall_clock.py").write_text(WALL_CLOCK_KIT)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml=kit.xml",
         "test_wall_clock.py"],
        cwd=tmp_path, env=clean_environment(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    failures = {
        str(case.get("name")): failure.get("message", "") + (failure.text or "")
        for case in ET.parse(tmp_path / "kit.xml").iter("testcase")
        for failure in case.iter("failure")
    }
    assert "test_times_are_readings_of_the_backend_clock" in failures, sorted(failures)
    assert len(failures) > 5, sorted(failures)
    for name, message in failures.items():
        assert "read self.clock(), never time.time()" in message, f"{name}:\n{message}"
    timed = failures["test_times_are_readings_of_the_backend_clock"]
    assert "conformance TimeTests.test_times_are_readings_of_the_backend_clock failed" in timed
    assert "WallClockBackend stored started_at=" in timed


class TestSQLiteAcrossProcesses(CrossProcessClaimTests):
    """An SQLite file opened from its URL: three processes claim from it at once."""

    async def make_backend(self, tmp_path: Path) -> Backend:
        return SQLiteBackend.from_url(f"sqlite:///{tmp_path / 'tasks.db'}")


class MemoryAcrossProcesses(CrossProcessClaimTests):
    """A named in-memory store opened from its URL: private to this process."""

    async def make_backend(self, tmp_path: Path) -> Backend:
        return MemoryBackend.from_url("memory://kit-private")


class MemoryWithoutUrl(CrossProcessClaimTests):
    """A memory store built directly: it has no URL other processes could open."""

    async def make_backend(self, tmp_path: Path) -> Backend:
        return MemoryBackend()


def test_a_store_private_to_one_process_is_skipped_saying_why(tmp_path: Path) -> None:
    with pytest.raises(pytest.skip.Exception, match="is not shared with other processes"):
        MemoryAcrossProcesses().test_processes_never_claim_one_task_twice(tmp_path)
    with pytest.raises(pytest.skip.Exception, match=r"built without a URL: return MemoryB"):
        MemoryWithoutUrl().test_processes_never_claim_one_task_twice(tmp_path)


class PhantomClaimBackend(SQLiteBackend):
    """An SQLite backend whose claim hands out pending tasks without taking them: every
    process gets the same ones."""

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        queues: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[TaskRecord]:
        pending = await self.list_tasks(statuses=[TaskStatus.PENDING], limit=limit)
        return [dataclasses.replace(r, lease_token="phantom") for r in pending]


class PhantomAcrossProcesses(CrossProcessClaimTests):
    """The phantom claims, from three processes."""

    async def make_backend(self, tmp_path: Path) -> Backend:
        return PhantomClaimBackend.from_url(f"sqlite:///{tmp_path / 'tasks.db'}")


def test_claims_that_are_not_atomic_across_processes_fail_the_kit(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="a claim is not atomic across processes"):
        PhantomAcrossProcesses().test_processes_never_claim_one_task_twice(tmp_path)


class DefaultReprBackend(MemoryBackend):
    """A MemoryBackend with the `repr` every backend inherits from `Backend`."""

    __repr__ = Backend.__repr__


class OwnUrlBackend(MemoryBackend):
    """A backend whose `from_url` sets `url` itself."""

    @classmethod
    def from_url(cls, url: str) -> OwnUrlBackend:
        backend = cls()
        backend.url = "memory://its-own"
        return backend


def test_the_default_repr_shows_the_url_its_password_hidden() -> None:
    opened = DefaultReprBackend.from_url("memory://ann:secret@shared")
    assert repr(opened) == "<DefaultReprBackend memory://ann:***@shared>"
    assert opened.url == "memory://ann:secret@shared", "other processes open the real URL"
    assert repr(DefaultReprBackend()) == "<DefaultReprBackend>"
    assert OwnUrlBackend.from_url("memory://x").url == "memory://its-own"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pw@db:5432/tasks?table_prefix=a_", "postgresql://app:***@db:5432/tasks?table_prefix=a_"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://app@db/tasks", "postgresql://app@db/tasks"),
        ("sqlite:////var/tasks.db", "sqlite:////var/tasks.db"),
        ("memory://", "memory://"),
    ],
)  # fmt: skip
def test_redact_url_hides_only_the_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_reference_renders_clock_url_schemes_and_capabilities() -> None:
    griffe = pytest.importorskip("griffe")
    module = griffe.load("sitq.backend", search_paths=[str(ROOT / "sitq-core" / "src")])
    backend = module["Backend"]
    for name in ("clock", "url_schemes", "capabilities", "url"):
        docstring = backend.members[name].docstring
        assert docstring is not None and docstring.value, f"Backend.{name} has no docstring"
    assert "self.clock()" in backend.members["clock"].docstring.value
    requeue = backend.members["requeue"].docstring.value
    assert all(word in requeue for word in ("``error``", "``traceback``", "``result``"))


def test_the_hint_names_the_field_and_both_clocks() -> None:
    clock = FakeClock()
    now = time.time()
    assert reads_wall_clock(now, clock) and not reads_wall_clock(clock() + 5, clock)
    told = wall_clock_message(MemoryBackend(), "started_at", now, clock)
    assert told.startswith(f"MemoryBackend stored started_at={now!r}: that is the wall clock")
    assert f"clock() is {clock()!r}" in told and "read self.clock()" in told


#: Methods of `Backend` a backend calls (never overrides), and conveniences built on the
#: contract it may override only for speed: the skeleton names them in its text, not its code.
CALLED_NOT_WRITTEN = {"supports", "notify_enqueued", "notify_finished", "enqueued_signal",
                      "finished_signal"}  # fmt: skip
CONVENIENCES = {"enqueue", "complete", "fail", "retry", "release", "get_result", "get_results"}
ATTRIBUTES = {"url_schemes", "capabilities", "clock", "url"}


def test_the_skeleton_lists_every_method_a_backend_writes() -> None:
    guide = (ROOT / "docs" / "guides" / "backend-plugin.md").read_text()
    source = guide.split("<!-- docs-test: file=sitq_mystore.py -->\n```python\n", 1)[1]
    namespace: dict[str, object] = {"__name__": "sitq_mystore"}
    exec(source.split("\n```\n", 1)[0], namespace)
    skeleton = namespace["MyStoreBackend"]
    assert isinstance(skeleton, type) and issubclass(skeleton, Backend)
    assert not inspect.isabstract(skeleton), "the skeleton leaves an abstract method out"
    public = {name for name in vars(Backend) if not name.startswith("_")}
    to_write = public - CALLED_NOT_WRITTEN - CONVENIENCES - ATTRIBUTES
    missing = sorted(to_write - set(vars(skeleton)))
    assert not missing, f"the skeleton in backend-plugin.md lacks {missing}"
    unnamed = sorted(n for n in CALLED_NOT_WRITTEN | CONVENIENCES if f"`{n}`" not in guide)
    assert not unnamed, f"the skeleton's text does not name {unnamed}"
    assert public >= CALLED_NOT_WRITTEN | CONVENIENCES | ATTRIBUTES, "a name left Backend"

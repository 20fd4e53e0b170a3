"""Wake-ups across processes through the sockets beside the database (`sitq_sqlite.wake`):
who gets a datagram, what a waiter does with it, and what is left behind."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sitq.conformance import make_record
from sitq.signals import Signal
from sitq_sqlite import SQLiteBackend, wake
from sitq_sqlite.wake import FINISHED, WORK, WakeListener, WakeSender, wake_dir

pytestmark = pytest.mark.skipif(not wake.supported(), reason="no AF_UNIX sockets here")

#: Bound on waits that end on a datagram (never reached unless the wake-up is lost).
BOUND = 20.0


def send_from_another_process(directory: str, kind: str) -> None:
    """What a sitq-sqlite process does after committing: a sender of its own (another
    process: another token, so this process's sockets are not skipped as its own)."""
    code = (
        "import sys; from sitq_sqlite.wake import WakeSender; "
        "WakeSender(sys.argv[1]).send(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, directory, kind], check=True, timeout=60)


def sockets(directory: str) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_a_datagram_from_another_process_ends_a_wait(tmp_path: Path) -> None:
    directory = wake_dir(str(tmp_path / "q.db"))

    async def main() -> None:
        listener = WakeListener(directory, WORK, Signal())
        assert listener.start()
        try:
            await listener.wait(0)  # the mark every new listener starts with
            waiting = asyncio.ensure_future(listener.wait(3600))
            await asyncio.to_thread(send_from_another_process, directory, WORK)
            await asyncio.wait_for(waiting, BOUND)
        finally:
            listener.stop()

    asyncio.run(main())
    assert sockets(directory) == []  # stop unbinds


def test_a_datagram_before_the_wait_is_not_lost(tmp_path: Path) -> None:
    """A commit between the waiter's last claim and the start of its wait leaves a mark the
    wait takes at once."""
    directory = wake_dir(str(tmp_path / "q.db"))

    async def main() -> None:
        signal = Signal()
        listener = WakeListener(directory, FINISHED, signal)
        assert listener.start()
        try:
            await listener.wait(0)
            assert not listener.pending
            notified = asyncio.ensure_future(signal.wait(3600))
            await asyncio.sleep(0)  # registered on the signal
            await asyncio.to_thread(send_from_another_process, directory, FINISHED)
            await asyncio.wait_for(notified, BOUND)  # the receiving thread has run
            assert listener.pending
            await asyncio.wait_for(listener.wait(3600), BOUND)
            assert not listener.pending
        finally:
            listener.stop()

    asyncio.run(main())


def test_senders_reach_only_other_processes_waiting_for_that_kind(tmp_path: Path) -> None:
    directory = wake_dir(str(tmp_path / "q.db"))
    os.mkdir(directory, 0o700)
    own = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    other_work = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    other_finished = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        own.bind(os.path.join(directory, f"w.{os.getpid()}.{wake._token}"))
        other_work.bind(os.path.join(directory, "w.1.other"))
        other_finished.bind(os.path.join(directory, "f.1.other"))
        WakeSender(directory).send(WORK)  # a datagram is queued when sendto returns
        assert other_work.recv(16, socket.MSG_DONTWAIT) == b"\x01"
        for idle in (own, other_finished):
            with pytest.raises(BlockingIOError):
                idle.recv(16, socket.MSG_DONTWAIT)
    finally:
        for sock in (own, other_work, other_finished):
            sock.close()


def test_a_dead_process_socket_is_removed_and_sends_never_raise(tmp_path: Path) -> None:
    directory = wake_dir(str(tmp_path / "q.db"))
    sender = WakeSender(directory)
    sender.send(WORK)  # no directory yet: nobody waits
    os.mkdir(directory, 0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(os.path.join(directory, "w.1.gone"))
    dead.close()  # its file stays, bound by no one: what a killed process leaves
    full = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    full.bind(os.path.join(directory, "w.2.busy"))
    try:
        for _ in range(200):  # far past the receive queue: the extra ones are dropped
            sender.send(WORK)
        assert sockets(directory) == ["w.2.busy"]
        assert full.recv(16, socket.MSG_DONTWAIT) == b"\x01"
    finally:
        full.close()
        sender.close()


def test_a_long_database_path_still_gets_wake_ups(tmp_path: Path) -> None:
    """``sun_path`` holds ~100 bytes; longer paths go through ``/proc/self/fd``."""
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc/self/fd here")
    folder = tmp_path / ("d" * 90)
    folder.mkdir()
    directory = wake_dir(str(folder / "q.db"))
    assert len(directory) > 100

    async def main() -> None:
        listener = WakeListener(directory, WORK, Signal())
        assert listener.start()
        try:
            await listener.wait(0)
            waiting = asyncio.ensure_future(listener.wait(3600))
            await asyncio.to_thread(send_from_another_process, directory, WORK)
            await asyncio.wait_for(waiting, BOUND)
        finally:
            listener.stop()

    asyncio.run(main())


def test_a_directory_others_can_write_is_not_used(tmp_path: Path) -> None:
    """Then the backend watches the WAL instead, and still notices other processes."""
    path = tmp_path / "q.db"
    directory = wake_dir(str(path))
    os.mkdir(directory)
    os.chmod(directory, 0o777)
    assert not WakeListener(directory, WORK, Signal()).start()

    async def main() -> None:
        waiter, writer = SQLiteBackend(path), SQLiteBackend(path)
        try:
            await waiter.connect()
            waiting = asyncio.ensure_future(waiter.wait_for_work(3600))
            await asyncio.sleep(0.05)
            await writer.enqueue(make_record())
            await asyncio.wait_for(waiting, BOUND)
        finally:
            await waiter.close()
            await writer.close()

    asyncio.run(main())
    assert sockets(directory) == []


def test_backends_on_one_file_share_a_socket_until_the_last_closes(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    directory = wake_dir(str(path))

    async def main() -> None:
        first, second = SQLiteBackend(path), SQLiteBackend(path)
        try:
            await first.connect()
            await first.wait_for_work(0)
            await second.wait_for_work(0)
            await first.wait_for_finish(0)
            names = sockets(directory)
            assert [n[0] for n in names] == ["f", "w"]
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
            await first.close()  # the only one waiting for finishes; both wait for work
            assert sockets(directory) == names[1:]
            waiting = asyncio.ensure_future(second.wait_for_work(3600))
            await asyncio.to_thread(send_from_another_process, directory, WORK)
            await asyncio.wait_for(waiting, BOUND)
            await second.close()
        finally:
            await first.close()
            await second.close()

    asyncio.run(main())
    assert not os.path.exists(directory)  # the last one out removes it


def test_an_enqueue_in_another_process_wakes_a_waiting_backend(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    code = (
        "import asyncio, sys\n"
        "from sitq.conformance import make_record\n"
        "from sitq_sqlite import SQLiteBackend\n"
        "async def main():\n"
        "    b = SQLiteBackend(sys.argv[1])\n"
        "    await b.enqueue(make_record())\n"
        "    await b.close()\n"
        "asyncio.run(main())\n"
    )

    async def main() -> None:
        backend = SQLiteBackend(path)
        try:
            await backend.connect()
            await backend.wait_for_work(0)  # binds; returns at once (it may have missed work)
            waiting = asyncio.ensure_future(backend.wait_for_work(3600))
            await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", code, str(path)], check=True, timeout=60
            )
            await asyncio.wait_for(waiting, BOUND)
        finally:
            await backend.close()

    asyncio.run(main())

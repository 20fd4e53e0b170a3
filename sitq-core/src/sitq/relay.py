"""Progress from a process worker's child to its parent, over the child's pipe.

A child never touches the database: ``set_progress`` in a child goes to its `ChildProgress`,
which sends the latest value to the parent as a tagged message (`progress_message`) at most
once per `CHILD_INTERVAL`, and the last value before the task's reply. The parent reads the
messages arriving before the reply (`read_progress`) and hands them to the worker's
`ProgressRelay` through the task's context, where they are throttled and stored like a thread's.
"""

from __future__ import annotations

import contextlib
import pickle
import threading
import time
from collections.abc import Callable

from .progress import Progress

#: The first byte of a progress message (a reply is a pickle, which never starts with it).
PROGRESS_TAG = b"P"
#: Seconds between two progress messages of one child (the latest value wins).
CHILD_INTERVAL = 0.2


def progress_message(progress: Progress) -> bytes:
    """``progress`` as a message on the pipe."""
    fields = (progress.fraction, progress.message, progress.updated_at)
    return PROGRESS_TAG + pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL)


def read_progress(message: bytes) -> Progress | None:
    """The `Progress` in a pipe message, or None if it is no progress message."""
    if message[:1] != PROGRESS_TAG:
        return None
    fraction, text, updated_at = pickle.loads(message[1:])
    return Progress(fraction, text, updated_at)


class ChildProgress:
    """The child's end: throttled progress messages through ``send`` (thread-safe), open
    only while a task runs (`open` … `close`)."""

    def __init__(self, send: Callable[[bytes], None], interval: float = CHILD_INTERVAL) -> None:
        self._send = send
        self.interval = interval
        self._lock = threading.Lock()
        self._open = False
        self._pending: Progress | None = None
        self._last = 0.0  # monotonic time of the last message
        self._timer: threading.Timer | None = None

    def open(self) -> None:
        """A task starts: accept its progress."""
        with self._lock:
            self._open, self._pending, self._last = True, None, 0.0

    def report(self, task_id: str, progress: Progress) -> None:
        """Send ``progress`` now, or keep it for a message at most ``interval`` from now."""
        with self._lock:
            if not self._open:
                return
            wait = self._last + self.interval - time.monotonic()
            if wait <= 0:
                self._emit(progress)
                return
            self._pending = progress
            if self._timer is None:
                self._timer = threading.Timer(wait, self._flush)
                self._timer.daemon = True
                self._timer.start()

    def close(self) -> None:
        """The task returned: send its last unsent value, then accept no more (call before
        sending the reply, so the parent reads the progress first)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._open and self._pending is not None:
                self._emit(self._pending)
            self._open, self._pending = False, None

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if self._open and self._pending is not None:
                self._emit(self._pending)

    def _emit(self, progress: Progress) -> None:
        # called with the lock held: one message at a time on the pipe
        self._pending = None
        self._last = time.monotonic()
        with contextlib.suppress(OSError):  # the parent is gone: the child ends at its next read
            self._send(progress_message(progress))


__all__ = ["CHILD_INTERVAL", "PROGRESS_TAG", "ChildProgress", "progress_message", "read_progress"]

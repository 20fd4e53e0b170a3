"""Waking waiters in other processes at once: one Unix datagram socket per waiting process,
in a directory beside the database.

SQLite has no LISTEN/NOTIFY. A process that waits for an event of a database (new work, or a
finished task) binds a socket named ``<kind>.<pid>.<token>`` in ``<db>.sitq-wake/`` (made
0700: only the owner of the database, whose file is 0600 too, can bind or send there) and a
daemon thread blocks on it: no CPU while nothing happens. A process that commits such an
event sends one byte, without blocking, to every socket of that kind but its own; the thread
receiving it fires the process's in-process `Signal` for the database, which wakes every
waiter on any event loop. The last socket unbound removes the directory.

A datagram is a hint, never the only way work is found: a sender of an older sitq-sqlite
sends none, a full socket buffer drops one, and a process killed leaves its socket file behind
(a sender finding it refused removes it). Waiters still end on their timeout (the worker's
``poll_interval``), and where no socket can be bound (no ``AF_UNIX``, a directory that is not
ours) the backend falls back to watching the WAL (`sitq_sqlite.watch`).

A commit between a waiter's last look at the database and the start of its wait is not lost
either: every datagram leaves a `WakeListener.pending` mark that the next wait takes at once.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import secrets
import socket
import stat
import threading
import time

from sitq.signals import Signal

logger = logging.getLogger("sitq.sqlite")

#: What a waiter waits for: new pending work, or a task finishing.
WORK = "w"
FINISHED = "f"

#: Seconds the receiving thread rests after waking its waiters: datagrams arriving meanwhile
#: wake them once, so a busy sender costs a waiting process at most ~1,000 wake-ups a second.
_REST = 0.001
#: A directory listing is trusted while the directory's mtime is unchanged, unless the listing
#: was taken less than this many ns after that mtime (timestamps are coarse: a socket bound in
#: the same tick as the listing would not change it).
_RACY_NS = 1_000_000_000
#: ``sun_path`` holds 108 bytes on Linux, 104 on the BSDs and macOS.
_MAX_SOCKET_PATH = 100
_BENIGN_SEND_ERRORS = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)

_token = secrets.token_hex(4)


def _new_token() -> None:
    global _token
    _token = secrets.token_hex(4)


if hasattr(os, "register_at_fork"):  # a forked child is another process: its own names
    os.register_at_fork(after_in_child=_new_token)


def supported() -> bool:
    """True where Unix datagram sockets and file owners exist (not on Windows)."""
    return hasattr(socket, "AF_UNIX") and hasattr(os, "getuid")


def wake_dir(db_path: str) -> str:
    """The directory of the wake-up sockets of the database at ``db_path``."""
    return os.path.realpath(db_path) + ".sitq-wake"


def _socket_address(directory: str, name: str, dir_fd: int | None) -> str:
    """The address of socket ``name``: its path, or a short alias of it through
    ``/proc/self/fd`` when the path is too long for ``sun_path``."""
    path = os.path.join(directory, name)
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH or dir_fd is None:
        return path
    return f"/proc/self/fd/{dir_fd}/{name}"


def _open_dir(directory: str) -> int | None:
    """A descriptor of ``directory`` for `_socket_address`, where ``/proc`` aliases work."""
    if len(os.fsencode(directory)) + 24 <= _MAX_SOCKET_PATH or not os.path.isdir("/proc/self/fd"):
        return None
    return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _own_dir(directory: str) -> bool:
    """Create ``directory`` 0700, or accept it if it exists as a real directory of ours that
    no one else can write to."""
    try:
        os.mkdir(directory, 0o700)
        return True
    except FileExistsError:
        pass
    info = os.lstat(directory)
    ours = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
    if not ours or info.st_mode & 0o022:
        logger.warning(
            "%s is not a private directory of this user; workers in other processes notice "
            "new tasks by polling instead (remove it to fix this)",
            directory,
        )
        return False
    return True


_send_socket: socket.socket | None = None
_send_socket_lock = threading.Lock()


def _sending_socket() -> socket.socket:
    """The process's one unbound, non-blocking socket every `WakeSender` sends through."""
    global _send_socket
    with _send_socket_lock:
        if _send_socket is None:
            _send_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            _send_socket.setblocking(False)
        return _send_socket


class WakeSender:
    """Sends the wake-ups of one database; thread-safe, a few microseconds a call.

    The directory is listed again only when it changed (a socket was bound or removed, or
    the directory made anew), so a send to no one is one ``stat``.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._listing: _Listing | None = None

    def send(self, kind: str) -> None:
        """Wake the processes waiting for ``kind`` (`WORK` or `FINISHED`); never raises."""
        try:
            with self._lock:
                listing = self._current()
                if listing is None:
                    return
                for name in listing.names:
                    if name[0] == kind and not name.endswith(_token):
                        self._send(listing, name)
        except OSError as exc:  # a wake-up is a hint: waiters poll anyway
            logger.debug("wake-up through %s failed: %s", self.directory, exc)

    def close(self) -> None:
        """Forget the listing (idempotent; a later `send` lists again)."""
        with self._lock:
            listing, self._listing = self._listing, None
        if listing is not None:
            listing.close()

    def _current(self) -> _Listing | None:
        try:
            info = os.stat(self.directory)
        except FileNotFoundError:  # no process waits here
            return None
        version = (info.st_ino, info.st_mtime_ns)
        listing = self._listing
        if listing is not None and listing.still_valid(version):
            return listing
        if listing is not None:
            listing.close()
        self._listing = _Listing(self.directory, version)
        return self._listing

    def _send(self, listing: _Listing, name: str) -> None:
        try:
            _sending_socket().sendto(b"\x01", listing.address(name))
        except ConnectionRefusedError:  # a socket file bound by no one: its process died
            try:
                os.unlink(os.path.join(self.directory, name))
            except FileNotFoundError:
                pass
            self._forget()
        except FileNotFoundError:  # unbound since the listing
            self._forget()
        except OSError as exc:
            if exc.errno not in _BENIGN_SEND_ERRORS:  # full: it has a wake-up waiting
                raise

    def _forget(self) -> None:
        if self._listing is not None:
            self._listing.close()
            self._listing = None


class _Listing:
    """The sockets in a wake-up directory as listed at one time, and a descriptor of that
    directory where socket paths are too long (see `_socket_address`)."""

    def __init__(self, directory: str, version: tuple[int, int]) -> None:
        self.directory = directory
        self.version = version
        self.listed_at = time.time_ns()
        self.names = [n for n in os.listdir(directory) if n[:2] in ("w.", "f.")]
        self._dir_fd = _open_dir(directory)

    def still_valid(self, version: tuple[int, int]) -> bool:
        """True if the directory, now at ``version`` (inode, mtime), holds the same names."""
        return version == self.version and self.listed_at - version[1] > _RACY_NS

    def address(self, name: str) -> str:
        """Where to send to socket ``name``."""
        return _socket_address(self.directory, name, self._dir_fd)

    def close(self) -> None:
        """Close the directory descriptor (idempotent)."""
        fd, self._dir_fd = self._dir_fd, None
        if fd is not None:
            os.close(fd)


class WakeListener:
    """This process's socket for one database and one kind of event: while it is open, every
    datagram fires ``signal``."""

    def __init__(self, directory: str, kind: str, signal: Signal) -> None:
        self.directory = directory
        self.kind = kind
        self.signal = signal
        #: Set by every datagram (and at the start), taken by `wait`.
        self.pending = True
        self.pid = os.getpid()
        self._name = f"{kind}.{self.pid}.{_token}"
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> bool:
        """Bind the socket and start the receiving thread; False if this cannot be done here
        (the caller then polls)."""
        if not supported():
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            bound = self._bind(sock)
        except OSError as exc:
            logger.warning("cannot bind a wake-up socket in %s (%s); polling instead",
                           self.directory, exc)  # fmt: skip
            bound = False
        if not bound:
            sock.close()
            return False
        self._socket = sock
        self._thread = threading.Thread(
            target=self._receive, name=f"sitq-wake-{self.kind}", daemon=True
        )
        self._thread.start()
        return True

    def _bind(self, sock: socket.socket) -> bool:
        for attempt in range(3):  # the last listener of another process may remove the folder
            if not _own_dir(self.directory):
                return False
            dir_fd = _open_dir(self.directory)
            try:
                sock.bind(_socket_address(self.directory, self._name, dir_fd))
            except FileNotFoundError:
                if attempt == 2:
                    raise
            else:
                return True
            finally:
                if dir_fd is not None:
                    os.close(dir_fd)
        return False

    async def wait(self, timeout: float) -> None:
        """Return at once if a datagram came since the last wait, else on the next one (or any
        in-process notification of the signal), or after ``timeout`` seconds."""
        if self.pending:
            self.pending = False
            return
        await self.signal.wait(timeout)
        self.pending = False  # this wake-up is taken: what the caller looks at next covers it

    def stop(self) -> None:
        """Unbind and stop the thread (idempotent). In a forked child, only closes the
        inherited descriptor: the socket file is the parent's."""
        sock, self._socket = self._socket, None
        if sock is None:
            return
        if os.getpid() != self.pid:
            sock.close()
            return
        self._stopping = True
        try:
            os.unlink(os.path.join(self.directory, self._name))
            os.rmdir(self.directory)  # fails while another process has a socket there
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)  # ends the thread's recv
        except OSError:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        sock.close()

    def _receive(self) -> None:
        sock = self._socket
        assert sock is not None
        while _received(sock) and not self._stopping:
            self.pending = True
            self.signal.notify()
            time.sleep(_REST)


def _received(sock: socket.socket) -> bool:
    """Block until datagrams come, and take every one queued; False once the socket is shut."""
    try:
        sock.recv(16)
        # the ones queued meanwhile: one wake-up for all (b"" once the socket is shut)
        while sock.recv(16, socket.MSG_DONTWAIT):
            pass
    except BlockingIOError:
        pass
    except OSError:
        return False
    return True


class _Listeners:
    """The listeners of this process, shared by every backend on the same database and
    counted, so the last backend closed stops them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], tuple[WakeListener, int]] = {}

    def acquire(self, directory: str, kind: str, signal: Signal) -> WakeListener | None:
        """The started listener for ``(directory, kind)``, or None if none can be started."""
        with self._lock:
            key = (directory, kind)
            found = self._open.get(key)
            if found is not None and found[0].pid != os.getpid():  # inherited through fork
                found[0].stop()
                found = None
            if found is None:
                listener = WakeListener(directory, kind, signal)
                if not listener.start():
                    return None
                found = (listener, 0)
            self._open[key] = (found[0], found[1] + 1)
            return found[0]

    def release(self, listener: WakeListener) -> None:
        """Drop one use of ``listener``; the last one stops it."""
        with self._lock:
            key = (listener.directory, listener.kind)
            found = self._open.get(key)
            if found is None or found[0] is not listener:
                listener.stop()
                return
            if found[1] > 1:
                self._open[key] = (listener, found[1] - 1)
                return
            del self._open[key]
        listener.stop()

    def stop_all(self) -> None:
        """Stop every listener (at exit: leaves no socket file behind)."""
        with self._lock:
            found = [listener for listener, _ in self._open.values()]
            self._open.clear()
        for listener in found:
            listener.stop()


listeners = _Listeners()
atexit.register(listeners.stop_all)

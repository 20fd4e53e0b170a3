"""The child side of `sitq.processes`: the loop each child process of a process worker runs,
and the messages it and the parent exchange over their pipe.

A child receives a call (serializer name, the serializer itself the first time, the payload,
the task's context, whether it is timed), tells the parent `STARTED` when the function starts
if the call has a timeout, relays progress (`sitq.relay`), and sends back ``("ok", value)`` or
``("error", exception, traceback)``: plain pickle for a plain value, else cloudpickle. A reply
larger than `INLINE_LIMIT` is announced with `LARGE` first, so the parent reads it off its
event loop. Children never open the database.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import pickle
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from .context import TaskContext, bind
from .errors import SerializationError, SitqError
from .payload import Codec
from .relay import ChildProgress

#: The serializer name meaning "the call itself, cloudpickled".
CODE = "__code__"
#: A child decoded the call and starts it (replies are pickles: never b"S"). Between it and
#: the reply, a child may send progress messages (see `sitq.relay`).
STARTED = b"S"
#: The next message, the reply, is larger than `INLINE_LIMIT`.
LARGE = b"L"
#: Bytes of a message the event loop sends or reads itself (an idle child's empty pipe takes
#: that much at once); a larger one is sent or read by an I/O thread.
INLINE_LIMIT = 32 * 1024


class ChildTaskError(SitqError):
    """A task's child process died, or raised something that could not be sent back."""


def child_main(conn: Connection) -> None:
    """Loop of a child: receive a call, run it, send back the outcome; exit on EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    codecs: dict[str, Codec] = {}
    progress = ChildProgress(conn.send_bytes)
    started = functools.partial(conn.send_bytes, STARTED)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        reply = _run_message(message, codecs, started, progress)
        if len(reply) > INLINE_LIMIT:
            conn.send_bytes(LARGE)
        conn.send_bytes(reply)


def _run_message(
    message: bytes,
    codecs: dict[str, Codec],
    started: Callable[[], None],
    progress: ChildProgress,
) -> bytes:
    try:
        name, entry_blob, data, context, timed = pickle.loads(message)
        if isinstance(context, TaskContext):  # set_progress goes to the parent over the pipe
            context = context.with_reporter(progress.report)
        if name == CODE:
            function, args, kwargs = pickle.loads(data)
        else:
            if entry_blob is not None:
                codecs[name] = pickle.loads(entry_blob)
            function, args, kwargs = codecs[name].decode_call(data)
        if timed:
            started()  # the timeout counts from here
        progress.open()
        try:
            with bind(context):  # what sitq.current_task() returns in the child
                value = function(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = asyncio.run(_await(value))
        finally:
            progress.close()  # its last value goes before the reply
        reply: tuple[Any, ...] = ("ok", value)
    except Exception as exc:
        reply = ("error", exc, traceback.format_exc())
    try:
        return _dumps(reply)
    except Exception as exc:
        if reply[0] == "ok":
            error: Exception = SerializationError(
                f"the task returned a {type(reply[1]).__name__}, which cannot be sent back "
                f"from its child process: {exc}"
            )
            tb = traceback.format_exc()
        else:
            error = ChildTaskError(f"{type(reply[1]).__name__}: {reply[1]}")
            tb = reply[2]
        return _dumps(("error", error, tb))


#: Types whose values plain pickle writes exactly as cloudpickle would, only faster.
_PLAIN = frozenset({type(None), bool, int, float, str, bytes})


def _dumps(reply: tuple[Any, ...]) -> bytes:
    """A reply as bytes: plain pickle for a plain value, cloudpickle for anything else (it
    sends classes and functions of the child's ``__main__`` by value)."""
    if reply[0] == "ok" and type(reply[1]) in _PLAIN:
        return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    return cloudpickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]


async def _await(awaitable: Any) -> Any:
    return await awaitable

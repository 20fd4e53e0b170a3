"""A stored call and result shown as text, without running anything the store holds.

Arguments are decoded only with a serializer that cannot carry code (JSON, msgpack…): a
pickle payload could run code as it is decoded, so it is shown as its size. The function is
never imported: its stored name is shown as is.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass, field
from typing import Any

from sitq.backend import TaskRecord
from sitq.queue import TaskQueue

#: The longest repr shown of one argument or result; longer ones are cut.
MAX_REPR = 2000


@dataclass
class CallText:
    """The text of a stored call, or why there is none.

    :param args: each positional argument's repr.
    :param kwargs: each keyword argument's repr, by name.
    :param note: why the arguments are not shown (None when they are).
    """

    args: list[str]
    kwargs: dict[str, str]
    note: str | None = None
    literals: list[str] = field(default_factory=list)
    """When the arguments are not decoded: the reprs of the plain values (text, numbers)
    read from a pickle's opcodes, which never runs it."""


def short_repr(value: object) -> str:
    """``repr(value)``, cut to `MAX_REPR` characters."""
    text = repr(value)
    return text if len(text) <= MAX_REPR else text[:MAX_REPR] + f"… ({len(text)} characters)"


#: The most values `pickle_literals` lists.
MAX_LITERALS = 50


def pickle_literals(data: bytes) -> list[str]:
    """The reprs of the strings and numbers a pickle holds, read opcode by opcode with
    `pickletools.genops` (which parses and never executes); empty if ``data`` is no pickle."""
    found: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if isinstance(arg, (str, bytes, int, float)) and opcode.name not in _NOT_VALUES:
                found.append(short_repr(arg))
                if len(found) >= MAX_LITERALS:
                    break
    except Exception:  # not a pickle, or cut short: show what was read
        pass
    return found


#: Opcodes whose argument is bookkeeping, not a value of the call.
_NOT_VALUES = frozenset(
    {"PROTO", "FRAME", "MEMOIZE", "BINPUT", "LONG_BINPUT", "PUT", "BINGET", "LONG_BINGET", "GET",
     "GLOBAL", "STACK_GLOBAL", "INST"}
)  # fmt: skip


def _safe_loads(queue: TaskQueue, record: TaskRecord, data: bytes) -> object:
    codec = queue.codec_for(record.serializer)
    if codec.carries_code:
        raise ValueError(
            f"the {record.serializer!r} serializer can carry code: not decoded here "
            f"({len(data)} bytes)"
        )
    return codec.serializer.loads(data)


def call_text(queue: TaskQueue, record: TaskRecord) -> CallText:
    """The arguments of ``record`` as text (checked against the queue's signing key first)."""
    if record.expired:
        return CallText([], {}, "expired: its payload was dropped (result_ttl)")
    body = record.payload
    try:
        body = queue.signer.open_call(record.id, record.function, record.serializer, record.payload)
        call: Any = _safe_loads(queue, record, body)
        _, args, kwargs = call
        return CallText(
            [short_repr(a) for a in args], {str(k): short_repr(v) for k, v in kwargs.items()}
        )
    except Exception as exc:  # any failure to decode is shown, never raised to the page
        return CallText([], {}, f"arguments not shown: {exc}", pickle_literals(body))


def result_text(queue: TaskQueue, record: TaskRecord) -> str | None:
    """The repr of a succeeded task's result, or why it is not shown; None without one."""
    if record.result is None:
        return None
    try:
        codec = queue.envelope.result_codec(record.serializer)
        if codec.carries_code:
            return f"result not shown: the {codec.name!r} serializer can carry code"
        body = queue.signer.open_result(record.id, record.result)
        return short_repr(codec.decode_result(body))
    except Exception as exc:  # shown, never raised to the page
        return f"result not shown: {exc}"

"""The built-in serializers, registered through the same hook as any plugin's.

* ``cloudpickle`` (default): any Python object, lambdas and functions defined in ``__main__``
  included. Trusted writers only: unpickling runs code.
* ``pickle``: the standard library's; functions travel by reference.
* ``msgpack`` and ``json``: data only; functions travel as import paths. The choice when the
  people who enqueue are not fully trusted.
"""

from __future__ import annotations

import io
import json
import pickle
import sys
import weakref
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

import cloudpickle
import msgpack

from .hookspecs import hookimpl
from .registry import SerializerType

DEFAULT_SERIALIZER = "cloudpickle"


class CloudpickleSerializer:
    """cloudpickle: pickles functions and closures by value when they cannot be imported.

    Plain values (None, numbers, strings, bytes, small containers of them) and importable
    functions pickle the same with the standard pickler, about five times faster than
    cloudpickle's setup per call; `dumps` takes that path when it can tell the bytes would
    mean the same (see `plain_for_pickle`).
    """

    def dumps(self, obj: Any) -> bytes:
        """Encode with cloudpickle (highest protocol)."""
        if plain_for_pickle(obj):
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        with io.BytesIO() as buffer:
            _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
            return buffer.getvalue()

    def loads(self, data: bytes) -> Any:
        """Decode with the standard unpickler (cloudpickle output is plain pickle)."""
        return pickle.loads(data)


class _Pickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle's pickler, refusing open files.

    cloudpickle would send a file opened for reading as a snapshot of its contents (and fail
    on one opened for writing): neither is what a task given a file handle expects to get.
    """

    def reducer_override(self, obj: Any) -> Any:
        if (
            isinstance(obj, io.IOBase)
            and not isinstance(obj, (io.BytesIO, io.StringIO))
            and obj is not sys.stdout
            and obj is not sys.stderr
        ):
            name = getattr(obj, "name", None)
            raise TypeError(
                f"cannot send an open file ({name!r}) to a worker: pass its path (or its "
                f"contents) and open it inside the task"
            )
        return super().reducer_override(obj)


_SCALARS = frozenset({type(None), bool, int, float, str, bytes})
_CONTAINERS = frozenset({tuple, list, dict, set, frozenset})
_PLAIN_BUDGET = 32  # values looked at before giving the decision to cloudpickle
# cloudpickle's own test (private: without it every call goes through cloudpickle)
_by_reference: Any = getattr(
    getattr(cloudpickle, "cloudpickle", None), "_should_pickle_by_reference", None
)


# What `_by_reference` said of each function, while no module is registered by value (which
# would change its answers): asking costs more than pickling the function.
_by_reference_seen: weakref.WeakKeyDictionary[FunctionType, bool] = weakref.WeakKeyDictionary()
_by_value_modules: Any = getattr(
    getattr(cloudpickle, "cloudpickle", None), "_PICKLE_BY_VALUE_MODULES", None
)


def _pickles_by_reference(function: FunctionType) -> bool:
    """cloudpickle's `_should_pickle_by_reference`, remembered per function."""
    if _by_value_modules is None or _by_value_modules:
        return bool(_by_reference(function))
    try:
        return _by_reference_seen[function]
    except KeyError:
        answer = _by_reference_seen[function] = bool(_by_reference(function))
        return answer


def plain_for_pickle(obj: Any) -> bool:
    """True if standard pickle encodes ``obj`` exactly as cloudpickle would.

    That holds for exact builtin scalars, exact builtin containers of such values,
    functions cloudpickle itself would pickle by reference (importable, not from
    ``__main__``, not registered by value), and objects whose class says they reduce to a
    reference (``__sitq_by_reference__()`` is True: declared tasks, see `sitq.tasks`).
    Instances of other classes are not plain: their class might be one cloudpickle sends by
    value. Bounded: big values return False.
    """
    if _by_reference is None:
        return False
    budget = _PLAIN_BUDGET
    stack = [obj]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        item = stack.pop()
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind in _CONTAINERS:
            if len(item) > budget:
                return False
            if kind is dict:
                stack.extend(item.keys())
                stack.extend(item.values())
            else:
                stack.extend(item)
            continue
        if kind is FunctionType:
            if not _pickles_by_reference(item):
                return False
            continue
        if kind is BuiltinFunctionType and isinstance(item.__self__, ModuleType):
            continue  # len, math.sqrt: pickled by reference by both
        by_reference = getattr(kind, "__sitq_by_reference__", None)
        if by_reference is not None and by_reference(item):
            continue
        return False
    return True


class PickleSerializer:
    """The standard library's pickle."""

    def dumps(self, obj: Any) -> bytes:
        """Encode with pickle (highest protocol)."""
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        """Decode with pickle."""
        return pickle.loads(data)


class MsgpackSerializer:
    """msgpack: compact and fast, data only (tuples come back as lists)."""

    def dumps(self, obj: Any) -> bytes:
        """Encode with msgpack."""
        return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]

    def loads(self, data: bytes) -> Any:
        """Decode with msgpack."""
        return msgpack.unpackb(data, raw=False, strict_map_key=False)


class JsonSerializer:
    """JSON: readable, data only."""

    def dumps(self, obj: Any) -> bytes:
        """Encode as compact UTF-8 JSON."""
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()

    def loads(self, data: bytes) -> Any:
        """Decode UTF-8 JSON."""
        return json.loads(data)


@hookimpl
def sitq_serializers() -> list[SerializerType]:
    """The four built-in serializers."""
    return [
        SerializerType("cloudpickle", CloudpickleSerializer(), carries_code=True),
        SerializerType("pickle", PickleSerializer(), carries_code=True),
        SerializerType("msgpack", MsgpackSerializer()),
        SerializerType("json", JsonSerializer()),
    ]

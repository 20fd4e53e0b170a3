"""The built-in serializers, registered through the same hook as any plugin's.

* ``cloudpickle`` (default): any Python object, lambdas and functions defined in ``__main__``
  included. Trusted writers only: unpickling runs code.
* ``pickle``: the standard library's; functions travel by reference.
* ``msgpack`` and ``json``: data only; functions travel as import paths. The choice when the
  people who enqueue are not fully trusted.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import cloudpickle
import msgpack

from .hookspecs import hookimpl
from .registry import SerializerType

DEFAULT_SERIALIZER = "cloudpickle"


class CloudpickleSerializer:
    """cloudpickle: pickles functions and closures by value when they cannot be imported."""

    def dumps(self, obj: Any) -> bytes:
        """Encode with cloudpickle (highest protocol)."""
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        """Decode with the standard unpickler (cloudpickle output is plain pickle)."""
        return pickle.loads(data)


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

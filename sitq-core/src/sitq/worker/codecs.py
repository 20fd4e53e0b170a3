"""`WorkerCodecs`: which codec decodes each task's payload and which encodes its result.

A worker's ``serializer=`` and ``deserializer=`` replace the serializer named in each task
record. Readers decode results with the serializer named in the record, so a ``serializer``
that writes what that one cannot read is checked against the queue's at construction, and
tasks whose own serializer cannot read it get their results written with their own instead.
"""

from __future__ import annotations

import logging
from typing import Any

from ..backend import TaskRecord
from ..errors import ConfigurationError
from ..payload import Codec, serializer_entry
from ..plugins import PluginManager
from ..queue import TaskQueue
from ..registry import Serializer, SerializerType

_PROBE_VALUE = {"sitq": [1, 2.5, "probe", None, True]}
_PROBE_CALL = ("sitq.probe:probe", [1, "a"], {"k": [1.5, None]})


class WorkerCodecs:
    """The codecs of one worker.

    :param queue: the worker's queue (its codecs by serializer name).
    :param serializer: the ``serializer=`` option, or None.
    :param deserializer: the ``deserializer=`` option, or None.
    :param plugins: the worker's plugins (registered serializers).
    :param logger: where a serializer mismatch is logged (once per serializer).
    """

    def __init__(
        self,
        queue: TaskQueue,
        serializer: str | Serializer | SerializerType | None,
        deserializer: str | Serializer | SerializerType | None,
        plugins: PluginManager,
        logger: logging.Logger,
    ) -> None:
        self.queue = queue
        self.encoder = _codec("serializer", serializer, plugins)
        self.decoder = _codec("deserializer", deserializer, plugins)
        self.logger = logger
        self._compatible: dict[str, bool] = {}  # record serializer → reads our results?

    def check_against_queue(self) -> None:
        """Reject a serializer/deserializer that cannot talk to the queue's serializer."""
        queue, encoder, decoder = self.queue.codec, self.encoder, self.decoder
        if encoder is not None and not _writes_for(encoder, queue, _PROBE_VALUE):
            raise ConfigurationError(
                f"serializer={encoder.name!r} writes results that this queue's {queue.name!r} "
                f"serializer (which get_result decodes them with) cannot read. Leave serializer "
                f"out to store results with the task's own serializer, or use the same one as "
                f"the queue: TaskQueue(..., serializer=...)."
            )
        if decoder is not None and not _writes_for(queue, decoder, _PROBE_CALL):
            raise ConfigurationError(
                f"deserializer={decoder.name!r} cannot read task payloads written by this "
                f"queue's {queue.name!r} serializer. Leave deserializer out to decode each task "
                f"with the serializer it was stored with, or use the same one as the queue."
            )

    def for_payload(self, record: TaskRecord) -> Codec:
        """The codec that decodes ``record``'s payload (raises `LookupError` if unknown)."""
        return self.decoder or self.queue.codec_for(record.serializer)

    def for_result(self, record: TaskRecord) -> Codec:
        """The codec for a task's result: ``serializer`` if the task's own serializer (which
        readers decode results with) reads what it writes, else the task's own."""
        try:
            own = self.queue.codec_for(record.serializer)
        except LookupError:  # not registered here: only our own codecs can write it
            fallback = self.encoder or self.decoder
            if fallback is None:
                raise
            return fallback
        encoder = self.encoder
        if encoder is None:
            return own
        ok = self._compatible.get(record.serializer)
        if ok is None:
            ok = self._compatible[record.serializer] = _writes_for(encoder, own, _PROBE_VALUE)
            if not ok:
                self.logger.warning(
                    "serializer=%r writes results that the %r serializer of some tasks cannot "
                    "read; their results are stored with %r instead",
                    encoder.name,
                    own.name,
                    own.name,
                )
        return encoder if ok else own


def _codec(name: str, spec: Any, plugins: PluginManager) -> Codec | None:
    """The codec for a ``serializer=``/``deserializer=`` argument, or a clear error."""
    if spec is None:
        return None
    if not isinstance(spec, (str, SerializerType)) and not (
        callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None))
    ):
        raise ConfigurationError(
            f"{name}={spec!r} has no dumps()/loads(); pass a registered serializer name "
            f"({', '.join(sorted(plugins.serializers))}) or an object with dumps(obj) -> bytes "
            "and loads(bytes) -> obj, such as the pickle module"
        )
    return Codec(serializer_entry(spec, plugins))


def _writes_for(writer: Codec, reader: Codec, sample: Any) -> bool:
    """True if ``reader`` reads back what ``writer`` writes (lists and tuples alike)."""
    try:
        back = reader.serializer.loads(writer.serializer.dumps(sample))
    except Exception:
        return False
    return bool(_plain(back) == _plain(sample))


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


__all__ = ["WorkerCodecs"]

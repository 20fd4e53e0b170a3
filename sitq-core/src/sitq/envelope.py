"""Sealing calls and results into the bytes a backend stores, and opening them again.

A queue seals each call it stores and a worker opens it; a worker seals each return value and
whoever reads the result opens it. Both sides hold an `Envelope`, so the codec chosen, the
signature (`sitq.signing`) and the size limit (``max_payload_bytes``) are decided here, once,
on every path a call or a result takes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigurationError, SerializationError
from .payload import AllowList, Codec, Resolver, codec_option, reads_back, serializer_entry
from .registry import Serializer, SerializerType
from .serializers import DEFAULT_SERIALIZER
from .signing import SecretKey, Signer

if TYPE_CHECKING:
    from .backend import TaskRecord
    from .plugins import PluginManager

#: Default ``max_payload_bytes``: 64 MiB.
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 2**20

#: What a worker's ``serializer=`` must write for the queue's serializer to read back.
_PROBE_VALUE = {"sitq": [1, 2.5, "probe", None, True]}
#: What the queue's serializer writes that a worker's ``deserializer=`` must read back.
_PROBE_CALL = ("sitq.probe:probe", [1, "a"], {"k": [1.5, None]})


class OpenedCall(NamedTuple):
    """A stored call, checked and decoded; ``codec`` and ``body`` are what decoded it and the
    encoded call itself (signature removed), for an executor that sends it elsewhere."""

    function: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    codec: Codec
    body: bytes


def check_max_payload_bytes(value: object) -> None:
    """Raise `ConfigurationError` unless ``value`` is a valid ``max_payload_bytes``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"max_payload_bytes must be an int >= 1 or None, got {value!r}")


class Envelope:
    """Seals and opens the calls and results of one queue (and of the workers serving it).

    :param codec: encodes the calls sealed here; its name is stored with each task.
    :param plugins: where the serializer a stored task names is looked up.
    :param signer: signs what is sealed and checks what is opened (default: no signing).
    :param max_payload_bytes: the largest encoded call or result sealed (None: no limit).
    :param encoder: a worker's ``serializer=``: writes results when the task's own serializer
        reads them back (see `result_codec`).
    :param decoder: a worker's ``deserializer=``: decodes every call instead of the serializer
        the task names.
    :param logger: where a serializer that cannot write some task's results is reported.

    A queue builds one with `from_options`; a worker derives its own with `for_worker`.
    """

    __slots__ = (
        "_codecs",
        "_compatible",
        "_logger",
        "_plugins",
        "_result_codecs",
        "codec",
        "decoder",
        "encoder",
        "max_payload_bytes",
        "signer",
    )

    def __init__(
        self,
        codec: Codec,
        plugins: PluginManager,
        *,
        signer: Signer | None = None,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
        encoder: Codec | None = None,
        decoder: Codec | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        check_max_payload_bytes(max_payload_bytes)
        self.codec = codec
        self.signer = signer if signer is not None else Signer()
        self.max_payload_bytes = max_payload_bytes
        self.encoder = encoder
        self.decoder = decoder
        self._plugins = plugins
        self._logger = logger if logger is not None else logging.getLogger("sitq")
        self._codecs: dict[str, Codec] = {codec.name: codec}
        self._compatible: dict[str, bool] = {}  # a task's serializer → reads what encoder writes?
        self._result_codecs: dict[str, Codec] = {}  # a task's serializer → `result_codec`

    @classmethod
    def from_options(
        cls,
        plugins: PluginManager,
        *,
        serializer: str | Serializer | SerializerType = DEFAULT_SERIALIZER,
        secret_key: SecretKey | None = None,
        max_payload_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> Envelope:
        """The envelope of a queue built with these `TaskQueue` options."""
        signer = Signer.from_option(secret_key)
        codec = Codec(serializer_entry(serializer, plugins))
        return cls(codec, plugins, signer=signer, max_payload_bytes=max_payload_bytes)

    def for_worker(
        self,
        *,
        serializer: Any = None,
        deserializer: Any = None,
        secret_key: SecretKey | None = None,
        plugins: PluginManager | None = None,
        logger: logging.Logger | None = None,
    ) -> Envelope:
        """The envelope of a worker serving this queue, with the worker's options.

        ``serializer``/``deserializer``: a registered name, a `SerializerType` or an object
        with ``dumps``/``loads`` (None: each task's own serializer), looked up in ``plugins``
        (default: this envelope's); ``secret_key`` replaces this queue's key when given. Call
        `check_compatible` too when the worker was given this queue (not a bare backend).
        """
        plugins = plugins if plugins is not None else self._plugins
        worker = Envelope(
            self.codec,
            self._plugins,
            signer=self.signer if secret_key is None else Signer.from_option(secret_key),
            max_payload_bytes=self.max_payload_bytes,
            encoder=codec_option("serializer", serializer, plugins),
            decoder=codec_option("deserializer", deserializer, plugins),
            logger=logger,
        )
        worker._codecs = self._codecs  # one lookup per serializer name for both
        return worker

    def check_compatible(self) -> None:
        """Raise `ConfigurationError` if the worker's ``serializer``/``deserializer`` cannot
        talk to the queue's serializer (a worker given a bare backend checks each task's
        serializer as it comes instead, in `result_codec`)."""
        if self.encoder is not None and not reads_back(self.encoder, self.codec, _PROBE_VALUE):
            raise ConfigurationError(
                f"serializer={self.encoder.name!r} writes results that this queue's "
                f"{self.codec.name!r} serializer (which get_result decodes them with) cannot "
                f"read. Leave serializer out to store results with the task's own serializer, "
                f"or use the same one as the queue: TaskQueue(..., serializer=...)."
            )
        if self.decoder is not None and not reads_back(self.codec, self.decoder, _PROBE_CALL):
            raise ConfigurationError(
                f"deserializer={self.decoder.name!r} cannot read task payloads written by this "
                f"queue's {self.codec.name!r} serializer. Leave deserializer out to decode each "
                f"task with the serializer it was stored with, or use the same one as the queue."
            )

    # -- codecs ------------------------------------------------------------------------------

    @property
    def serializer(self) -> str:
        """The name of the serializer calls are sealed with (stored with each task)."""
        return self.codec.name

    def codec_for(self, name: str) -> Codec:
        """The codec of the serializer named ``name``; `SerializerNotFound` (a `LookupError`)
        if no plugin registers it."""
        codec = self._codecs.get(name)
        if codec is None:
            codec = self._codecs[name] = Codec(self._plugins.serializer(name))
        return codec

    def result_codec(self, serializer: str) -> Codec:
        """The codec for the result of a task stored with ``serializer``.

        Readers decode a result with the task's own serializer, so the worker's ``serializer=``
        writes it only if that one reads it back; otherwise the task's own does. A serializer
        unknown here can only be written by the worker's own codecs.
        """
        found = self._result_codecs.get(serializer)
        if found is not None:
            return found
        try:
            own = self.codec_for(serializer)
        except LookupError:
            fallback = self.encoder or self.decoder
            if fallback is None:
                raise
            return fallback  # not remembered: a plugin registered later may know it
        encoder = self.encoder
        if encoder is None:
            self._result_codecs[serializer] = own
            return own
        ok = self._compatible.get(serializer)
        if ok is None:
            ok = self._compatible[serializer] = reads_back(encoder, own, _PROBE_VALUE)
            if not ok:
                self._logger.warning(
                    "serializer=%r writes results that the %r serializer of some tasks cannot "
                    "read; their results are stored with %r instead",
                    encoder.name,
                    own.name,
                    own.name,
                )
        found = self._result_codecs[serializer] = encoder if ok else own
        return found

    # -- calls -------------------------------------------------------------------------------

    def seal_call(
        self,
        task_id: str,
        function_name: str,
        function: Callable[..., Any] | str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> bytes:
        """The payload to store for a call (stored with ``serializer`` as its serializer).

        Raises `SerializationError` if the codec cannot encode it, and `ConfigurationError` if
        it encodes to more than ``max_payload_bytes``.
        """
        body = self.codec.encode_call(function, args, kwargs)
        if self._too_big(body):
            raise ConfigurationError(
                f"the call to {function_name} encodes to {len(body):,} bytes, over this queue's "
                f"max_payload_bytes ({self.max_payload_bytes:,}). Store large data elsewhere "
                "(a file, object storage) and pass its path, or raise "
                "TaskQueue(max_payload_bytes=...)."
            )
        return self.signer.seal_call(task_id, function_name, self.codec.name, body)

    def open_call(
        self,
        record: TaskRecord,
        allow: AllowList | None = None,
        resolve: Resolver | None = None,
    ) -> OpenedCall:
        """Check and decode a stored call (``allow``: the functions it may name; ``resolve``:
        finds a declared task by the name stored, before importing it).

        Raises `SignatureError`/`PayloadError` if it fails its signature check or cannot be
        decoded, `SerializerNotFound` (a `LookupError`) if its serializer is unknown here.
        """
        codec = (
            self.decoder or self._codecs.get(record.serializer) or self.codec_for(record.serializer)
        )
        # checked before a byte of it is decoded
        body = self.signer.open_call(record.id, record.function, record.serializer, record.payload)
        function, args, kwargs = codec.decode_call(body, allow, resolve)
        return OpenedCall(function, args, kwargs, codec, body)

    # -- results -----------------------------------------------------------------------------

    def seal_result(self, record: TaskRecord, value: Any) -> bytes:
        """The bytes to store for what the task of ``record`` returned.

        Raises `SerializationError` if it cannot be encoded or encodes to more than
        ``max_payload_bytes`` (a task failing so is not retried: it would fail again).
        """
        body = self.result_codec(record.serializer).encode_result(value)
        if self._too_big(body):
            raise SerializationError(
                f"the task returned {len(body):,} bytes once encoded, over the queue's "
                f"max_payload_bytes ({self.max_payload_bytes:,}); return a reference (a path, a "
                "key) to large data instead"
            )
        return self.signer.seal_result(record.id, body)

    def open_result(self, record: TaskRecord, sealed: bytes | None) -> Any:
        """Check and decode ``sealed``, a result of the task of ``record`` (``record.result``
        as stored, or what a worker just sealed for it); None stays None.

        Raises `SignatureError`/`PayloadError` if it fails its signature check or cannot be
        decoded, `SerializerNotFound` (a `LookupError`) if its serializer is unknown here.
        """
        body = self.signer.open_result(record.id, sealed)
        return self.result_codec(record.serializer).decode_result(body)

    def _too_big(self, body: bytes) -> bool:
        """True if ``body`` is over ``max_payload_bytes``. The limit applies to the encoded
        call or result, before the signature: what the user's data costs, not sitq's header."""
        limit = self.max_payload_bytes
        return limit is not None and len(body) > limit

    def __repr__(self) -> str:
        return (
            f"<Envelope serializer={self.codec.name!r} {self.signer!r} "
            f"max_payload_bytes={self.max_payload_bytes!r}>"
        )


__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "Envelope",
    "OpenedCall",
    "check_max_payload_bytes",
]

"""Turning calls and return values into bytes and back, with one serializer.

Serializers that carry code (cloudpickle, pickle) encode the function itself. Data-only ones
(msgpack, json) encode its import path, ``module:qualname``, which the worker imports, only
if a `FunctionAllowList` (``Worker(allowed_functions=...)``) lets it.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from .errors import ConfigurationError, PayloadError, SerializationError
from .registry import Serializer, SerializerType
from .task import function_name


class AllowList(Protocol):
    """What a worker's ``allowed_functions`` checks: a `FunctionAllowList` of patterns, or a
    queue's declared tasks (`sitq.blueprints.TaskRegistry`, ``allowed_functions="declared"``)."""

    def check_path(self, path: str) -> None:
        """Raise `PayloadError` unless the function at import path ``path`` may run."""

    def check_defined(self, func: Callable[..., Any], path: str) -> None:
        """Raise `PayloadError` unless ``func``, found at ``path``, is the one allowed there."""


#: Finds the function a stored name stands for before it is imported (declared task names).
Resolver = Callable[[str], "Callable[..., Any] | None"]


class Codec:
    """Encodes task calls and results with one registered serializer."""

    __slots__ = ("_dumps", "_loads", "carries_code", "name", "serializer")

    def __init__(self, entry: SerializerType) -> None:
        self.name = entry.name
        self.serializer = entry.serializer
        self.carries_code = entry.carries_code
        self._dumps = entry.serializer.dumps
        self._loads = entry.serializer.loads

    def encode_call(
        self, func: Callable[..., Any] | str, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> bytes:
        """Encode a call; raises `SerializationError` naming the function and the fix."""
        target: Any = func
        if isinstance(func, str) or not self.carries_code:
            target = function_name(func)
            if not isinstance(func, str):
                check_importable(func, target, self.name)
        try:
            return self._dumps((target, tuple(args), dict(kwargs)))
        except Exception as exc:
            fix = "Pass values it can encode"
            if self.name != "cloudpickle":
                fix += ", or choose another serializer (cloudpickle encodes almost anything)"
            raise SerializationError(
                f"cannot encode the call to {function_name(func)} with the {self.name!r} "
                f"serializer: {exc}. {fix}."
            ) from exc

    def decode_call(
        self, data: bytes, allow: AllowList | None = None, resolve: Resolver | None = None
    ) -> tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]:
        """Decode a call; raises `PayloadError` if the bytes or the function are bad.

        With ``allow``, a function named by import path is checked against it before its
        module is imported, and one decoded as an object (pickle) before it is returned.
        A stored name is looked up with ``resolve`` (a queue's declared tasks) before it is
        imported.
        """
        try:
            target, args, kwargs = self._loads(data)
        except Exception as exc:
            raise PayloadError(
                f"cannot decode task payload with the {self.name!r} serializer: {exc!r}"
            ) from exc
        if isinstance(target, str):
            if allow is not None:
                allow.check_path(target)
            found = resolve(target) if resolve is not None else None
            if found is None:
                found = import_function(target)
            if allow is not None:
                allow.check_defined(found, target)
            target = found
        elif allow is not None and callable(target):
            allow.check_path(function_name(target))
        if not callable(target):
            raise PayloadError(f"task payload holds {type(target).__name__}, not a function")
        if (
            not isinstance(args, (list, tuple))
            or not isinstance(kwargs, dict)
            or (kwargs and not all(isinstance(k, str) for k in kwargs))
        ):
            raise PayloadError("task payload arguments are malformed")
        return target, args if type(args) is tuple else tuple(args), kwargs

    def encode_result(self, value: Any) -> bytes:
        """Encode a task's return value."""
        try:
            return self._dumps(value)
        except Exception as exc:
            raise SerializationError(
                f"the task returned a {type(value).__name__} that the {self.name!r} serializer "
                f"cannot encode: {exc}"
            ) from exc

    def decode_result(self, data: bytes | None) -> Any:
        """Decode a stored return value."""
        if data is None:
            return None
        try:
            return self._loads(data)
        except Exception as exc:
            raise PayloadError(
                f"cannot decode the stored result with the {self.name!r} serializer: {exc!r}"
            ) from exc


def import_function(path: str) -> Callable[..., Any]:
    """Import ``module:qualname`` (or ``module.name``); `PayloadError` if it cannot be found."""
    module_name, sep, qualname = path.partition(":")
    if not sep:
        module_name, _, qualname = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise PayloadError(f"cannot find the task function {path!r}: {exc!r}") from exc
    if not callable(obj):
        raise PayloadError(f"{path!r} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def _split(path: str) -> tuple[str, str]:
    """``module:qualname`` (or ``module.name``) → (module, qualname), as `import_function`."""
    module, sep, qualname = path.partition(":")
    if not sep:
        module, _, qualname = path.rpartition(".")
    return module, qualname


class FunctionAllowList:
    """The functions a worker may run, as ``module:qualname`` patterns.

    ``"myapp.tasks:*"`` allows every top-level function of ``myapp.tasks``; ``"myapp.*:*"``
    those of every module under ``myapp``; ``"myapp.tasks:Mailer.send"`` one method. The
    module part is a glob over the dotted module name; the name part is matched one dotted
    segment at a time, and a ``*`` never matches a name starting with ``_``.

    A path is checked before its module is imported (importing runs the module's code), and
    the function found must be defined where the path says: ``myapp.tasks:system`` is refused
    even if ``myapp.tasks`` did ``from os import system``.
    """

    __slots__ = ("_parsed", "patterns")

    def __init__(self, patterns: Iterable[str]) -> None:
        if isinstance(patterns, str):
            patterns = [patterns]
        try:
            self.patterns = tuple(patterns)
        except TypeError:
            raise ConfigurationError(
                f"allowed_functions must be a list of 'module:name' patterns, got {patterns!r}"
            ) from None
        parsed = []
        for pattern in self.patterns:
            module, sep, name = pattern.partition(":") if isinstance(pattern, str) else ("", "", "")
            if not (sep and module and name):
                raise ConfigurationError(
                    f"allowed_functions entry {pattern!r} is not a 'module:name' pattern; "
                    "write e.g. 'myapp.tasks:*' or 'myapp.tasks:send_email'"
                )
            parsed.append((module, tuple(name.split("."))))
        if not parsed:
            raise ConfigurationError(
                "allowed_functions is empty, so no task could run; list the functions tasks "
                "may call, e.g. ['myapp.tasks:*'], or leave it out"
            )
        self._parsed = tuple(parsed)

    def allows(self, path: str) -> bool:
        """True if the function at ``path`` may run."""
        module, qualname = _split(path)
        if not module or not qualname:
            return False
        parts = qualname.split(".")
        for module_pattern, name_patterns in self._parsed:
            if not fnmatch.fnmatchcase(module, module_pattern) or len(parts) != len(name_patterns):
                continue
            if all(
                fnmatch.fnmatchcase(part, pat) and (pat.startswith("_") or not part.startswith("_"))
                for part, pat in zip(parts, name_patterns, strict=True)
            ):
                return True
        return False

    def check_path(self, path: str) -> None:
        """Raise `PayloadError` unless ``path`` is allowed."""
        if not self.allows(path):
            raise PayloadError(
                f"task function {path!r} is not in this worker's allowed_functions "
                f"({', '.join(self.patterns)}); it was not imported"
            )

    def check_defined(self, func: Callable[..., Any], path: str) -> None:
        """Raise `PayloadError` unless ``func`` is defined at ``path`` itself."""
        module, qualname = _split(path)
        if function_name(func) != f"{module}:{qualname}":
            raise PayloadError(
                f"task function {path!r} is {function_name(func)}, defined elsewhere; "
                "allowed_functions only runs functions defined in the allowed modules"
            )

    def __repr__(self) -> str:
        return f"FunctionAllowList({list(self.patterns)!r})"


def check_importable(func: Callable[..., Any], path: str, serializer: str) -> None:
    """Fail at enqueue if a data-only serializer could not find ``func`` again by its path."""
    try:
        found = import_function(path)
    except PayloadError:
        found = None
    if found is not func:
        raise SerializationError(
            f"the {serializer!r} serializer sends functions by import path, and {path} cannot "
            f"be imported back (lambdas, nested functions and functions defined in __main__ "
            f"cannot). Define it at module level in an importable module, or use "
            f"serializer='cloudpickle'."
        )


def serializer_entry(spec: str | Serializer | SerializerType, registry: Any) -> SerializerType:
    """Resolve a serializer given by name, registered record, or object with dumps/loads."""
    if isinstance(spec, SerializerType):
        return spec
    if isinstance(spec, str):
        return registry.serializer(spec)  # type: ignore[no-any-return]
    if callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None)):
        name = getattr(spec, "name", None) or getattr(spec, "__name__", None)
        name = name if isinstance(name, str) else type(spec).__name__
        registered = registry.serializers.get(name)
        if registered is not None and registered.serializer is spec:
            return registered  # type: ignore[no-any-return]
        return SerializerType(name, spec, carries_code=getattr(spec, "carries_code", True))
    raise ConfigurationError(
        f"serializer must be a registered name or an object with dumps() and loads(), got {spec!r}"
    )


def codec_option(option: str, spec: Any, registry: Any) -> Codec | None:
    """The codec for a worker's ``serializer=``/``deserializer=`` argument (None stays None),
    or a `ConfigurationError` naming the registered choices."""
    if spec is None:
        return None
    if not isinstance(spec, (str, SerializerType)) and not (
        callable(getattr(spec, "dumps", None)) and callable(getattr(spec, "loads", None))
    ):
        raise ConfigurationError(
            f"{option}={spec!r} has no dumps()/loads(); pass a registered serializer name "
            f"({', '.join(sorted(registry.serializers))}) or an object with dumps(obj) -> bytes "
            "and loads(bytes) -> obj, such as the pickle module"
        )
    return Codec(serializer_entry(spec, registry))


def reads_back(writer: Codec, reader: Codec, sample: Any) -> bool:
    """True if ``reader`` reads back ``sample`` as ``writer`` writes it (lists and tuples
    alike)."""
    try:
        back = reader.serializer.loads(writer.serializer.dumps(sample))
    except Exception:
        return False
    return bool(_plain(back) == _plain(sample))


def _plain(value: Any) -> Any:
    """``value`` with every tuple a list, as data-only serializers give them back."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
